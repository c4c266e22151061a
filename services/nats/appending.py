"""How `JetStreamStore` appends a decision: its key claims first, then one commit guarded per subject.

A person's commit expects the version it was decided on (``Nats-Expected-Last-Subject-Sequence``);
a stale writer is refused (10071) and gets `Conflict`, and a subject found shorter than that version
holds the person (ADR 0010). A lost acknowledgement is looked up in the stream before it is an error.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from nats.js.errors import APIError

from events import ledger as ev
from events.chain import encode_sealed, seal_stored
from events.subjects import REF_SUBJECT
from events.upcast import commit_id
from services.adjudicator.store import Conflict, LedgerHeld
from services.integrity.findings import PERSON_HEAD_MISSING
from services.nats.fast import expect_header
from services.nats.key_claims import KeyClaims
from services.nats.person_cache import CachedPerson, PersonCache
from services.nats.reads import last_subject_sequence, read_subject
from services.nats.reference import ReferenceFollower
from services.nats.streams import WRONG_LAST_SEQUENCE, actual_last
from services.policy.decision import Decision
from services.policy.state import Person, apply_commit

log = structlog.get_logger(component="ledger.store")

_GUARDED_REF_KINDS = frozenset({"year_close"})


class Appending:
    """The write half of `JetStreamStore` (services/nats/store.py), which gives it these:"""
    js: Any
    stream: str
    timeout: float
    metrics: Any
    guard: Any
    publisher: Any
    keys: KeyClaims
    ref: ReferenceFollower
    _cache: PersonCache
    _seal_key: bytes
    subject_of: Callable[[str], str]
    person: Callable[[str], Awaitable[Person]]
    forget: Callable[[str], None]
    _held: Callable[[str, int, str, str], LedgerHeld]

    async def append(self, decision: Decision, person: Person | None) -> None:
        if not decision.events:
            return                                    # a duplicate: answered from state, nothing new
        if self.guard is not None and self.guard.active:
            self.guard.check(None if decision.psn_no is None else self.subject_of(decision.psn_no))
        if decision.psn_no is not None:
            await self._append_person(decision, person)
        else:
            await self._append_ref(decision, person)

    async def _append_person(self, decision: Decision, person: Person | None) -> None:
        psn_no = decision.psn_no
        assert psn_no is not None
        if person is None:
            person = await self.person(psn_no)
        # Read the version and head before the first await: they belong to the state decided on.
        expected, head = person.version, person.head_hash
        entry = self._cache.get(psn_no)
        subject = entry.subject if entry is not None else self.subject_of(psn_no)
        events, stored, _ = seal_stored(decision.events, head)
        commit = ev.Commit(events[0].event_id, events[0].correlation_id, events, decision.results)
        payload = encode_sealed(self._seal_key, subject, commit, stored)
        mark = self.guard.high_water if self.guard is not None else 0
        holder = subject.rsplit(".", 1)[1]
        claims = [self.keys.claim(key, holder, events[0]) for key in decision.claims
                  if self.keys.held_by(key) != holder]
        try:
            for claim_subject, claim in claims:          # the keys first: never a commit whose key is another's
                await self._publish_claim(claim_subject, claim, mark, psn_no)
                self.keys.remember(claim_subject, holder)
            seq = await self._published(subject, payload, expected, commit.commit_id)
        except APIError as exc:
            self.forget(psn_no)
            if exc.err_code == WRONG_LAST_SEQUENCE:
                actual = actual_last(exc)
                if actual is not None and actual < expected:
                    raise self._held(subject, expected, PERSON_HEAD_MISSING,
                                     f"decided on sequence {expected}; the subject now ends at {actual}") from None
                if self.metrics is not None:
                    self.metrics.conflict()
                log.debug("conflict", subject=subject, expected=expected)
                raise Conflict(psn_no) from None
            raise
        except BaseException:
            self.forget(psn_no)                       # maybe stored, maybe not: the stream will tell
            raise
        if self.guard is not None:
            self.guard.acked(seq, mark)
        if person.version == expected:
            apply_commit(person, commit, seq)
            entry = self._cache.get(psn_no)
            if entry is None or entry.person is not person:
                if entry is None or entry.person.version < seq:
                    self._cache.put(psn_no, CachedPerson(person, subject))
        else:
            self.forget(psn_no)

    async def _append_ref(self, decision: Decision, person: Person | None) -> None:
        kind = decision.ref_kind
        if not kind:
            raise ValueError("a decision without psn_no must name its ref_kind")
        if kind == "rejected" and person is not None:
            # A refusal read the person's state (not_enrolled, unknown_settlement, ...) but appends
            # nothing to their subject, so the guard cannot catch stale state: check it here.
            subject = self.subject_of(person.psn_no)
            last = await last_subject_sequence(self.js, subject, stream=self.stream)
            if last < person.version:     # a direct get may come from a follower behind the leader: ask it
                last = await last_subject_sequence(self.js, subject, stream=self.stream, direct=False)
            if last != person.version:
                self.forget(person.psn_no)
                if last < person.version:
                    raise self._held(subject, person.version, PERSON_HEAD_MISSING,
                                     f"decided on sequence {person.version}; the subject now ends at {last}")
                raise Conflict(person.psn_no)
        events, stored, _ = seal_stored(decision.events, "")   # reference events: chained within the commit
        commit = ev.Commit(events[0].event_id, events[0].correlation_id, events, decision.results)
        expected = self.ref.applied[kind] if kind in _GUARDED_REF_KINDS else None
        subject = REF_SUBJECT.format(kind)
        mark = self.guard.high_water if self.guard is not None else 0
        try:
            seq = await self._publish(subject, encode_sealed(self._seal_key, subject, commit, stored), expected)
        except APIError as exc:
            raise self._lost_race(exc, kind) from None
        if self.guard is not None:
            self.guard.acked(seq, mark)
        if kind in self.ref.applied:
            await self.ref.catch_up(kind)

    def _lost_race(self, exc: APIError, who: str) -> Exception:
        """What to raise for a refused publish: a failed expected-sequence check is a lost race (a counted
        `Conflict`: decide again on fresh state); any other refusal stays itself."""
        if exc.err_code != WRONG_LAST_SEQUENCE:
            return exc
        if self.metrics is not None:
            self.metrics.conflict()
        return Conflict(who)

    async def _publish(self, subject: str, payload: bytes, expected: int | None) -> int:
        """One JetStream publish, guarded when `expected` is given; returns the stream sequence."""
        if self.metrics is None:
            return await self.publisher.publish(subject, payload, expect_header(expected))
        started = time.perf_counter()
        try:
            return await self.publisher.publish(subject, payload, expect_header(expected))
        finally:
            self.metrics.append_seconds.observe(time.perf_counter() - started)

    async def _published(self, subject: str, payload: bytes, expected: int, stored_id: str) -> int:
        """`_publish`, and when its acknowledgement does not come in time, the stream asked whether the
        commit landed all the same: a decision stored is answered as decided, not "unavailable" now and
        "duplicate" on the retry (bench_peer saw that on a slow disk)."""
        try:
            return await self._publish(subject, payload, expected)
        except asyncio.TimeoutError:
            msgs = await read_subject(self.js, subject, stream=self.stream, after_seq=expected, timeout=self.timeout)
            if msgs and commit_id(msgs[0].data) == stored_id:
                log.info("ack_lost_commit_stored", subject=subject, seq=msgs[0].seq)
                return msgs[0].seq
            raise

    async def _publish_claim(self, subject: str, claim: bytes, mark: int, psn_no: str) -> None:
        """Take a key: expecting 0 on its subject, so a key another person holds is a `Conflict` (the
        retry reads who holds it) before anything of this decision is stored."""
        try:
            seq = await self._published(subject, claim, 0, commit_id(claim))
        except APIError as exc:
            raise self._lost_race(exc, psn_no) from None
        if self.guard is not None:
            self.guard.acked(seq, mark)
