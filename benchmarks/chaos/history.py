"""The stream as the checks see it: every person subject of LEDGER read in order and folded with the
engine's own fold (services/policy/state.py `apply_commit`), as a fresh adjudicator would.

Reads through an ordered pull consumer (projections/source.py), which the
stream leader answers; a sequence missing in between is recorded as a gap
rather than raised, since a gap is exactly what the loss check wants to see.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from events import ledger as ev
from events.results import SettlementResult
from events.upcast import decode_commit
from projections.source import ReadFailed, StreamGap, StreamReader, last_sequence
from services.policy.pack import Pack, PackSet
from services.policy.state import Person, apply_commit
from events.subjects import STREAM


@dataclass
class History:
    last_seq: int = 0
    messages: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)        # (expected seq, got seq)
    undecodable: list[int] = field(default_factory=list)            # person-subject seqs that are no commit
    persons: dict[str, Person] = field(default_factory=dict)         # subject → folded person
    facts: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # setl_id → [(subject, seq)]
    fold_errors: list[str] = field(default_factory=list)

    def result_of(self, setl_id: str) -> SettlementResult | None:
        found = self.facts.get(setl_id)
        if not found:
            return None
        record = self.persons[found[0][0]].settlements.get(setl_id)
        return record.result if record is not None else None


async def read_history(js: Any, *, timeout: float = 10.0, tries: int = 10) -> History:
    """Fold the whole stream up to its last sequence now. A read the cluster ends (e.g. while a consumer
    finds its leader) or that delivers nothing for ``timeout`` s (three scenarios checking at once at a
    load average of 19 stalled 10 s) starts again where it stopped, up to ``tries`` times."""
    history = History(last_seq=await last_sequence(js, STREAM))
    seq = 0
    while seq < history.last_seq:
        try:
            async with StreamReader(js, seq + 1, max_batch=2000) as reader:
                while seq < history.last_seq:
                    batch = await reader.batch(timeout=timeout)
                    if not batch:
                        raise TimeoutError(f"stream {STREAM} stopped delivering at {seq} of {history.last_seq}")
                    for raw in batch:
                        _fold(history, raw.seq, raw.subject, raw.data)
                        seq = raw.seq
        except StreamGap as gap:          # "expected sequence N, got M": note it and read on from M
            words = str(gap).split()
            expected, got = int(words[-3].rstrip(",")), int(words[-1])
            history.gaps.append((expected, got))
            seq = got - 1
        except (ReadFailed, TimeoutError):
            tries -= 1
            if tries <= 0:
                raise
            await asyncio.sleep(1.0)
    return history


def _fold(history: History, seq: int, subject: str, data: bytes) -> None:
    history.messages += 1
    if not subject.startswith("ledger.person."):
        return
    try:
        commit = decode_commit(data)
    except msgspec.DecodeError:
        history.undecodable.append(seq)
        return
    person = history.persons.get(subject)
    if person is None:
        person = history.persons[subject] = Person(_psn_no(commit))
    for event in commit.events:
        if isinstance(event, ev.SettlementFacts):
            history.facts.setdefault(event.setl_id, []).append((subject, seq))
    try:
        apply_commit(person, commit, seq)
    except Exception as exc:              # a commit that does not fold onto what came before it
        history.fold_errors.append(f"{subject} seq {seq}: {exc!r}"[:300])


def _psn_no(commit: ev.Commit) -> str:
    for event in commit.events:
        psn_no = getattr(event, "psn_no", None)
        if psn_no:
            return psn_no
    return ""


@dataclass
class CapBreach:
    subject: str
    year: int
    what: str
    used: Decimal
    limit: Decimal


def cap_breaches(history: History, packs: PackSet) -> tuple[list[CapBreach], int, int]:
    """Person-years over a cap (shared assistance cap of the status, each line's own cap, the 大病 cap
    where no tilt lifts it); and how many capped person-years were checked and how many reached a cap."""
    breaches, checked, reached = [], 0, 0
    for subject, person in history.persons.items():
        for year, y in person.years.items():
            pack = _pack_of(person, packs, year)
            if pack is None:
                continue
            statuses = set(person.statuses)
            caps = [pack.status_cap(s) for s in statuses]
            shared = None if not caps or any(c is None for c in caps) else max(caps)   # 就高不就低
            limits = [("shared assistance cap", y.assistance_cap_used, shared)]
            limits += [(f"own cap of {rule}", used, pack.own_cap_of(rule)) for rule, used in y.own_used.items()]
            lifted = any(not t.keep_base_cap and statuses & set(t.statuses) for t in pack.critical_illness_tilts)
            limits.append(("critical-illness cap", y.ci_paid, None if lifted else pack.critical_illness.cap))
            for what, used, limit in limits:
                if limit is None:
                    continue
                checked += 1
                reached += used == limit
                if used > limit:
                    breaches.append(CapBreach(subject, year, what, used, limit))
    return breaches, checked, reached


def _pack_of(person: Person, packs: PackSet, year: int) -> Pack | None:
    enrolment = person.enrolments.get(year)
    if enrolment is None:
        return None
    with contextlib.suppress(Exception):
        return packs.for_area(enrolment.admdvs, dt.date(year, 6, 30))
    return None
