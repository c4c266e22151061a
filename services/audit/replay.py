"""Audit replay of one person: decide their messages again, compare with what was paid.

Nothing is written to the ledger. Each stored commit is turned back into the
inbound message that caused it (a settlement is kept whole in its `SettlementFacts`, with the hospital
as it was then; identities, enrolments, cancels, grants, year
ends), and run in the original order through the one decision path (`Handler`,
one per pack version) over a `MemoryStore`, with the pack version the commit
names (or the what-if pack). The new events are then compared with the stored ones.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from events import ledger as ev
from events.messages import (Enrolment, Inbound, PsnIdentity, SettlementCancel, TiltedGrant, YearClose,
                             encode_message)
from services.adjudicator.handler import Handler
from services.audit.compare import Difference, Scope, compare_commit
from services.audit.packs import PackLibrary
from services.compose.core import build_handler, counted_ids
from services.memory.store import MemoryStore
from services.policy.pack import Pack, PackSet
from services.policy.year_end import area_prefix


@dataclass
class PersonAudit:
    person_key: str
    commits: int = 0
    compared: int = 0
    skipped_after_as_of: int = 0
    differences: list[Difference] = field(default_factory=list)
    paid: dict[str, object] = field(default_factory=dict)
    recomputed: dict[str, object] = field(default_factory=dict)


def inbound_of(commit: ev.Commit) -> Inbound | None:
    """The message that produced `commit`, rebuilt from its events (None: nothing to re-decide)."""
    first = commit.events[0]
    if isinstance(first, ev.SettlementFacts):
        return first.settlement
    if isinstance(first, ev.StatusGranted):
        return PsnIdentity(psn_no=first.psn_no, admdvs=first.admdvs, status=first.status, action="grant",
                           begndate=first.begndate, enddate=first.enddate, source_dept=first.source_dept,
                           doc_no=first.doc_no)
    if isinstance(first, ev.StatusRevoked):
        return PsnIdentity(psn_no=first.psn_no, admdvs=first.admdvs, status=first.status, action="revoke",
                           begndate=first.begndate, source_dept=first.source_dept, doc_no=first.doc_no)
    if isinstance(first, ev.EnrolmentRecorded):
        return Enrolment(psn_no=first.psn_no, admdvs=first.admdvs, brdy=first.brdy, year=first.year,
                         insutype=first.insutype, contribution_std=first.contribution_std,  # type: ignore[arg-type]
                         enrol_date=first.enrol_date, in_normal_period=first.in_normal_period)
    if isinstance(first, ev.SettlementCancelled):
        return SettlementCancel(setl_id=first.setl_id, psn_no=first.psn_no, cancel_time=first.cancel_time)
    if isinstance(first, ev.TiltedGrantPaid):
        return TiltedGrant(grant_id=first.grant_id, psn_no=first.psn_no, admdvs=first.admdvs, year=first.year,
                           amount=first.requested, approval_no=first.approval_no, approved_on=first.approved_on)
    close = next((e for e in commit.events if isinstance(e, ev.QuotaYearSettled)), None)
    if close is not None:
        return YearClose(admdvs=close.admdvs, year=close.year)
    return None


class PersonReplay:
    """One person's replay: a private store, and one Handler per pack version the commits name.

    The handlers share the store (the person's state) and one clock, which reads the time each stored
    commit was recorded at, so every re-decision runs under the pack and at the time of the original.
    """

    def __init__(self, library: PackLibrary):
        self.library = library
        self.store = MemoryStore()
        self._new_id = counted_ids("audit")
        self._now = dt.datetime.now(dt.timezone.utc)
        self._handlers: dict[tuple[str, str] | None, Handler] = {}
        self.packs_seen: dict[str, Pack] = {}
        self.facts: dict[str, ev.SettlementFacts] = {}

    def _handler(self, packs: list[Pack], named: tuple[str, str] | None) -> Handler:
        found = self._handlers.get(named) if named is not None else None
        if found is None:
            found = build_handler(PackSet(packs), self.store, clock=lambda: self._now, new_id=self._new_id)
            if named is not None:
                self._handlers[named] = found
        return found

    def _handler_for(self, commit: ev.Commit) -> tuple[Handler | None, str | None]:
        named = next(((e.pack, e.pack_version) for e in commit.events if e.pack), None)
        if named is None:                   # year end: the packs of the settlements seen so far
            return self._handler(list(self.packs_seen.values()), None), None
        pack = self.library.resolve(*named)
        if pack is None:
            return None, f"pack {named[0]} version {named[1]} is not in the audit's pack library"
        self.packs_seen[pack.id] = pack
        return self._handler([pack], named), None

    async def replay(self, seq: int, commit: ev.Commit) -> tuple[list[ev.LedgerEvent], list, str | None]:
        """(new events, results, why not recomputed) for one stored commit."""
        message = inbound_of(commit)
        if message is None:
            return [], [], None
        handler, missing = self._handler_for(commit)
        if handler is None:
            return [], [], missing
        first = commit.events[0]
        if isinstance(first, ev.SettlementFacts):
            self.facts[first.setl_id] = first
            self.store.ref.hospitals[first.settlement.fixmedins_code] = first.hospital
            if first.after_year_close:     # the close was the area's, not on this person's subject
                self.store.ref.closed_years.add((area_prefix(first.settlement.admdvs), first.year))
        self._now = first.recorded_at or dt.datetime.now(dt.timezone.utc)
        before = len(self.store.commits)
        results = await handler.handle(encode_message(message), source="audit")
        events = [e for psn, c in self.store.commits[before:] if psn is not None for e in c.events]
        return events, results, None


async def audit_person(person_key: str, commits: list[tuple[int, ev.Commit]], library: PackLibrary,
                       scope: Scope, as_of: dt.datetime | None = None) -> PersonAudit:
    """Replay `commits` (one person's, in stream order) and list every difference in scope."""
    out = PersonAudit(person_key)
    replay = PersonReplay(library)
    for seq, commit in commits:
        recorded = commit.events[0].recorded_at if commit.events else None
        if as_of is not None and recorded is not None and recorded > as_of:
            out.skipped_after_as_of += 1
            continue
        out.commits += 1
        events, results, missing = await replay.replay(seq, commit)
        if not scope.covers(commit, replay.facts):
            continue
        out.compared += 1
        out.differences.extend(compare_commit(person_key, seq, commit, events, results, missing, out))
    return out
