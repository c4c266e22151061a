"""An in-memory store: the ledger without servers, for `ledger replay`, audits and unit tests."""
from __future__ import annotations

import gc
from collections.abc import AsyncIterator

from events import ledger as ev
from events.chain import seal
from services.adjudicator.store import Conflict
from services.policy.decision import Decision
from services.policy.engine import Reference
from services.policy.state import Person, apply_commit


class MemoryStore:
    """Every commit stays in memory: the whole ledger of a replay, an audit or a test.

    `freeze_every=N` hands the garbage collector's full passes a smaller heap: every N commits the
    objects alive so far are moved out of its reach (`gc.freeze`). A stored commit is never changed
    and makes no reference cycle, so there was nothing to collect in them; without this, each full
    pass walked the whole history again and took about a third of a 100,000-settlement replay. It
    freezes the whole process, so only batch processes that own theirs (`ledger replay`) turn it on.
    """

    def __init__(self, freeze_every: int = 0) -> None:
        self.freeze_every = freeze_every
        self.persons: dict[str, Person] = {}
        self.ref = Reference()
        self.ref_events: list[ev.LedgerEvent] = []
        self.commits: list[tuple[str | None, ev.Commit]] = []   # (psn_no or None, commit), in append order
        self.keys: dict[tuple[str, str], str] = {}              # global key → psn_no holding it
        self._seq = 0

    async def person(self, psn_no: str) -> Person:
        found = self.persons.get(psn_no)
        if found is None:
            found = self.persons[psn_no] = Person(psn_no)
        return found

    async def reference(self, refresh: bool = False) -> Reference:
        return self.ref

    async def key_taken(self, key: tuple[str, str], psn_no: str, fresh: bool) -> bool:
        return self.keys.get(key, psn_no) != psn_no

    async def append(self, decision: Decision, person: Person | None) -> None:
        if not decision.events and not decision.results:
            return
        if decision.psn_no is not None:
            current = self.persons.setdefault(decision.psn_no, Person(decision.psn_no))
            if person is not None and person.version != current.version:
                raise Conflict(decision.psn_no)      # decided on state that moved since (as JetStream's guard)
            if not decision.events:
                return           # duplicates answer from state; nothing new to store
            if any(self.keys.get(key, decision.psn_no) != decision.psn_no for key in decision.claims):
                raise Conflict(decision.psn_no)
            for key in decision.claims:
                self.keys[key] = decision.psn_no
            events, _ = seal(decision.events, current.head_hash)
            self._seq += 1
            commit = ev.Commit(events[0].event_id, events[0].correlation_id, events, decision.results)
            apply_commit(current, commit, self._seq)
            self.commits.append((decision.psn_no, commit))
            if self.freeze_every and self._seq % self.freeze_every == 0:
                gc.freeze()
        elif decision.events:
            self._seq += 1
            for event in decision.events:
                self.ref.evolve(event)
                self.ref_events.append(event)
            self.commits.append((None, ev.Commit(decision.events[0].event_id, decision.events[0].correlation_id,
                                                 decision.events, decision.results)))

    async def append_batch(self, pairs: list[tuple[Decision, Person]]) -> None:
        """All or none, as JetStream's atomic batch: every version and key checked before any is stored."""
        keys: set[tuple[str, str]] = set()
        for decision, person in pairs:
            current = self.persons.get(decision.psn_no or "")
            if decision.psn_no is None or (current.version if current else 0) != person.version:
                raise Conflict(decision.psn_no)
            for key in decision.claims:
                if self.keys.get(key, decision.psn_no) != decision.psn_no or key in keys:
                    raise Conflict(decision.psn_no)
                keys.add(key)
        for decision, person in pairs:
            await self.append(decision, person)

    def cached(self, psn_no: str) -> bool:
        return True

    def forget(self, psn_no: str) -> None:
        pass

    async def persons_due(self, admdvs: str, year: int) -> AsyncIterator[str]:
        for psn_no in list(self.persons):
            yield psn_no
