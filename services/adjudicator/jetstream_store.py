"""The `Store` on JetStream: one stream message per decision, guarded per person (ADR 0001).

Layout (stream LEDGER, services/runtime/stream.py):

* ``ledger.person.<person_key>`` — one `Commit` per decision of that person:
  its events sealed onto the person's hash chain, and the results given, so a
  repeat of any key is answered from the ledger itself (durable idempotency).
  Published with ``Nats-Expected-Last-Subject-Sequence`` = the version the
  decision was made on (0 for a new person); the server refuses a stale writer
  (err_code 10071) and we raise `Conflict`, so the handler reloads and decides
  again. Two adjudicators can never both spend the same room under a cap.
* ``ledger.ref.key.<hash>`` — the claim of a global key (``setl_id``, ``grant_id``) by one person,
  stored just before that person's commit and expecting sequence 0 on its subject: the second person
  to claim a key is refused (10071) before anything of theirs is stored, and is answered
  ``setl_id_conflict`` after a reload (integration.md §2 "Keys are global", ADR 0013).
* ``ledger.ref.<kind>`` — reference decisions: ``medins``, ``year_close``
  (guarded the same way on its own subject, so a repeated close is a
  ``duplicate`` across processes) and ``rejected`` (dead letters, unguarded:
  they depend on no shared state).

Person state lives in a bounded LRU cache and is rebuilt from the person's
subject on a miss; after a conflict the cached state is caught up from its
version instead of being rebuilt from scratch. Reference data is followed by
`ReferenceFollower` (services/adjudicator/reference_follower.py).

Every commit is sealed for its subject (events/chain.py `encode_sealed`), and
every commit read back must carry a valid seal and continue the person's chain.
One that does not, or a subject found shorter than the version decided on,
is reported to the integrity guard (services/integrity/guard.py), which then
refuses that person: `LedgerHeld`, answered `unavailable` (ADR 0010). The guard
is also asked before each decision whether the whole stream is held.

Concurrency inside one process: the state a decision reads and the version it
publishes against are taken without an intervening ``await`` (the handler calls
``append`` right after the pure ``decide``; ``append`` reads the version before
its first await), and cached state is only changed in whole commits between
awaits, so a decision made on state that has moved since can only lose its
race with a `Conflict`. The adjudicator still runs one decision per person at a
time (services/adjudicator/service.py) to keep per-person order and avoid
needless conflicts.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import structlog
from nats.js.errors import APIError

from events import ledger as ev
from events.chain import Unsealed, encode_sealed, links_from, read_sealed, seal_stored
from events.upcast import decode_commit
from services.adjudicator.reference_follower import POLL_EVERY, ReferenceFollower
from services.adjudicator.store import Conflict, LedgerHeld
from services.ingest.natsfast import JetStreamPublisher, expect_header
from services.integrity.findings import FORGED_MESSAGE, PERSON_HEAD_MISSING, Finding
from services.policy.decision import Decision
from services.policy.engine import Reference
from services.policy.state import Person, apply_commit
from services.policy.year_end import area_prefix
from services.runtime.secrets import keyed_hash, person_key
from services.runtime.stream import (
    KEY_SUBJECT,
    PERSON_SUBJECT,
    REF_SUBJECT,
    STREAM,
    WRONG_LAST_SEQUENCE,
    last_subject_sequence,
    read_subject,
)

log = structlog.get_logger(component="ledger.store")

DEFAULT_CACHE_SIZE = 100_000
_GUARDED_REF_KINDS = frozenset({"year_close"})


class _Entry:
    __slots__ = ("person", "subject", "stale")

    def __init__(self, person: Person, subject: str):
        self.person = person
        self.subject = subject
        self.stale = False


class JetStreamStore:
    """`Store` (services/adjudicator/store.py) over the LEDGER stream; see the module docstring."""

    def __init__(self, js: Any, secret: bytes, *, seal_key: bytes, cache_size: int = DEFAULT_CACHE_SIZE,
                 timeout: float = 5.0, metrics: Any = None, stream: str = STREAM, publisher: Any = None,
                 ref_poll_every: float = POLL_EVERY, guard: Any = None):
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self.js = js
        self._secret = secret
        self._seal_key = seal_key
        self.guard = guard                            # services.integrity.guard.IntegrityGuard, or None
        if guard is not None:
            guard.on_epoch = self.reset
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._by_subject: dict[str, str] = {}          # subject -> psn_no, for cached persons
        self.cache_size = cache_size
        self.timeout = timeout
        self.metrics = metrics
        self.stream = stream
        self.ref = ReferenceFollower(js, seal_key, stream=stream, timeout=timeout, poll_every=ref_poll_every,
                                     on_forged=self._refuse)
        self.publisher = publisher                    # services.ingest.natsfast.JetStreamPublisher
        self._own_publisher = publisher is None
        self._key_holders: OrderedDict[str, str] = OrderedDict()   # key subject → person_key, seen claimed

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self.publisher is None:
            self.publisher = JetStreamPublisher(self.js._nc, timeout=self.timeout)
            await self.publisher.start()
        await self.ref.start()

    async def close(self) -> None:
        await self.ref.close()
        if self._own_publisher and self.publisher is not None:
            await self.publisher.close()

    async def reset(self) -> None:
        """After a restore or an accepted loss: forget every cached person and follow reference data anew."""
        self._cache.clear()
        self._by_subject.clear()
        await self.ref.reset()

    def _refuse(self, finding: Finding) -> None:
        if self.guard is not None:
            self.guard.refuse(finding)

    def _held(self, subject: str, seq: int, code: str, detail: str) -> LedgerHeld:
        """Report what was found on `subject` to the guard; the error to raise instead of deciding."""
        finding = Finding(code, detail, subject.rpartition(".")[2], subject, seq)
        self._refuse(finding)
        return LedgerHeld(f"this person's history is held until it is restored or the loss accepted: {code}")

    # --- persons -----------------------------------------------------------------------

    def subject_of(self, psn_no: str) -> str:
        return PERSON_SUBJECT.format(person_key(self._secret, psn_no))

    async def person(self, psn_no: str) -> Person:
        entry = self._cache.get(psn_no)
        if self.guard is not None and self.guard.active:
            self.guard.check(entry.subject if entry is not None else self.subject_of(psn_no))
        if entry is not None:
            self._cache.move_to_end(psn_no)
            if not entry.stale:
                return entry.person
            await self._catch_up(entry)
            return entry.person
        return (await self._load(psn_no, self.subject_of(psn_no))).person

    def cached(self, psn_no: str) -> bool:
        """Whether `person(psn_no)` answers from memory, without reading the stream."""
        entry = self._cache.get(psn_no)
        return entry is not None and not entry.stale

    def forget(self, psn_no: str) -> None:
        """After a conflict: the next `person()` catches the cached state up from the stream."""
        entry = self._cache.get(psn_no)
        if entry is not None:
            entry.stale = True

    async def _load(self, psn_no: str | None, subject: str) -> _Entry:
        """Rebuild a person from their whole subject (psn_no None: learn it from the events)."""
        started = time.perf_counter()
        msgs = await read_subject(self.js, subject, stream=self.stream, timeout=self.timeout)
        person = Person(psn_no) if psn_no is not None else None
        head = ""
        for msg in msgs:
            head = self._checked(subject, msg, head)
            commit = decode_commit(msg.data)
            if person is None:
                found = next((e.psn_no for e in commit.events if isinstance(getattr(e, "psn_no", None), str)), None)
                if found is None:
                    continue
                person = Person(found)
            apply_commit(person, commit, msg.seq)
        if person is None:                           # an empty subject and no psn_no: nothing to cache
            raise LookupError(f"no person on {subject}")
        if self.metrics is not None:
            self.metrics.person_loaded(len(msgs), time.perf_counter() - started)
        current = self._cache.get(person.psn_no)
        if current is not None and not current.stale and current.person.version >= person.version:
            return current                           # someone appended while we were reading
        entry = _Entry(person, subject)
        self._put(person.psn_no, entry)
        return entry

    async def _catch_up(self, entry: _Entry) -> None:
        while True:
            version = entry.person.version
            msgs = await read_subject(self.js, entry.subject, stream=self.stream, after_seq=version,
                                      timeout=self.timeout)
            if entry.person.version != version:
                continue                              # moved while we read: read again from the new version
            head = entry.person.head_hash
            for msg in msgs:
                head = self._checked(entry.subject, msg, head)
            for msg in msgs:
                apply_commit(entry.person, decode_commit(msg.data), msg.seq)
            entry.stale = False
            return

    def _checked(self, subject: str, msg: Any, head: str) -> str:
        """The head after `msg` if the ledger sealed it for `subject` and it continues from `head`;
        else the person is refused (`LedgerHeld`): never folded, never skipped."""
        try:
            view = read_sealed(self._seal_key, subject, msg.data)
        except Unsealed as bad:
            raise self._held(subject, msg.seq, FORGED_MESSAGE, str(bad)) from None
        after = links_from(view.events, head)
        if after is None:
            raise self._held(subject, msg.seq, FORGED_MESSAGE, "does not continue the person's chain")
        return after

    def _put(self, psn_no: str, entry: _Entry) -> None:
        old = self._cache.get(psn_no)
        if old is not None:
            self._by_subject.pop(old.subject, None)
        self._cache[psn_no] = entry
        self._cache.move_to_end(psn_no)
        self._by_subject[entry.subject] = psn_no
        while len(self._cache) > self.cache_size:
            _, evicted = self._cache.popitem(last=False)
            self._by_subject.pop(evicted.subject, None)

    @property
    def cached_persons(self) -> int:
        return len(self._cache)

    # --- global keys -------------------------------------------------------------------

    def key_subject(self, key: tuple[str, str]) -> str:
        return KEY_SUBJECT.format(keyed_hash(self._secret, f"{key[0]}:{key[1]}"))

    async def key_taken(self, key: tuple[str, str], psn_no: str, fresh: bool) -> bool:
        """From what this process has seen claimed; `fresh` (after a conflict) reads the key's subject."""
        subject = self.key_subject(key)
        holder = self._key_holders.get(subject)
        if holder is None and fresh:
            msgs = await read_subject(self.js, subject, stream=self.stream, timeout=self.timeout)
            for msg in msgs[:1]:                  # a claim the ledger did not seal is a forgery, not a holder
                try:
                    read_sealed(self._seal_key, subject, msg.data)
                except Unsealed as bad:
                    raise self._held(subject, msg.seq, FORGED_MESSAGE, str(bad)) from None
            claims = [e for m in msgs[:1] for e in decode_commit(m.data).events if isinstance(e, ev.KeyClaimed)]
            if claims:
                holder = claims[0].person_key
                self._remember_key(subject, holder)
        return holder is not None and holder != person_key(self._secret, psn_no)

    def _remember_key(self, subject: str, holder: str) -> None:
        self._key_holders[subject] = holder
        if len(self._key_holders) > self.cache_size:
            self._key_holders.popitem(last=False)

    def _claim(self, key: tuple[str, str], holder: str, first: ev.LedgerEvent) -> tuple[str, bytes]:
        """The claim's subject and commit: one `KeyClaimed` event, stamped like the decision that takes it."""
        subject = self.key_subject(key)
        claim = ev.KeyClaimed(event_id=f"{first.event_id}:key:{key[0]}", correlation_id=first.correlation_id,
                              causation_id=first.causation_id, recorded_at=first.recorded_at, kind=key[0],
                              key_hash=subject.rsplit(".", 1)[1], person_key=holder)
        events, stored, _ = seal_stored([claim], "")
        return subject, encode_sealed(self._seal_key, subject, ev.Commit(claim.event_id, claim.correlation_id,
                                                                         events), stored)

    async def _published(self, subject: str, payload: bytes, expected: int, commit_id: str) -> int:
        """`_publish`, and when its acknowledgement does not come in time, the stream asked whether the
        commit landed all the same: a decision stored is answered as decided, not "unavailable" now and
        "duplicate" on the retry (bench_peer saw that on a slow disk)."""
        try:
            return await self._publish(subject, payload, expected)
        except asyncio.TimeoutError:
            msgs = await read_subject(self.js, subject, stream=self.stream, after_seq=expected, timeout=self.timeout)
            if msgs and _commit_id(msgs[0].data) == commit_id:
                log.info("ack_lost_commit_stored", subject=subject, seq=msgs[0].seq)
                return msgs[0].seq
            raise

    async def _publish_claim(self, subject: str, claim: bytes, mark: int, psn_no: str) -> None:
        """Take a key: expecting 0 on its subject, so a key another person holds is a `Conflict` (the
        retry reads who holds it) before anything of this decision is stored."""
        try:
            seq = await self._published(subject, claim, 0, _commit_id(claim))
        except APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                if self.metrics is not None:
                    self.metrics.conflict()
                raise Conflict(psn_no) from None
            raise
        if self.guard is not None:
            self.guard.acked(seq, mark)

    # --- appending ---------------------------------------------------------------------

    async def append(self, decision: Decision, person: Person | None) -> None:
        if not decision.events:
            return                                    # a duplicate: answered from state, nothing new
        if self.guard is not None and self.guard.active:
            self.guard.check(None if decision.psn_no is None else self.subject_of(decision.psn_no))
        if decision.psn_no is not None:
            await self._append_person(decision, person)
        else:
            await self._append_ref(decision, person)

    async def append_batch(self, pairs: list[tuple[Decision, Person]]) -> None:
        """Several persons' decisions as one atomic batch (group commit, services/adjudicator/jetstream_batch.py)."""
        from services.adjudicator.jetstream_batch import append_batch
        await append_batch(self, pairs)

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
        claims = [self._claim(key, holder, events[0]) for key in decision.claims
                  if self._key_holders.get(self.key_subject(key)) != holder]
        try:
            for claim_subject, claim in claims:          # the keys first: never a commit whose key is another's
                await self._publish_claim(claim_subject, claim, mark, psn_no)
                self._remember_key(claim_subject, holder)
            seq = await self._published(subject, payload, expected, commit.commit_id)
        except APIError as exc:
            self.forget(psn_no)
            if exc.err_code == WRONG_LAST_SEQUENCE:
                actual = _actual_last(exc)
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
                    self._put(psn_no, _Entry(person, subject))
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
            if exc.err_code == WRONG_LAST_SEQUENCE:
                if self.metrics is not None:
                    self.metrics.conflict()
                raise Conflict(kind) from None
            raise
        if self.guard is not None:
            self.guard.acked(seq, mark)
        if kind in self.ref.applied:
            await self.ref.catch_up(kind)

    async def _publish(self, subject: str, payload: bytes, expected: int | None) -> int:
        """One JetStream publish, guarded when `expected` is given; returns the stream sequence."""
        if self.metrics is None:
            return await self.publisher.publish(subject, payload, expect_header(expected))
        started = time.perf_counter()
        try:
            return await self.publisher.publish(subject, payload, expect_header(expected))
        finally:
            self.metrics.append_seconds.observe(time.perf_counter() - started)

    # --- reference data ----------------------------------------------------------------

    async def reference(self, refresh: bool = False) -> Reference:
        if refresh:
            await self.ref.catch_up()
        return self.ref.reference

    # --- year end ----------------------------------------------------------------------

    async def persons_due(self, admdvs: str, year: int) -> AsyncIterator[str]:
        """psn_no of every person with a quota-managed visit in `year` under `admdvs`.

        Cost: the stream has no index by area or visit kind, so this lists every
        ``ledger.person.*`` subject (stream info with ``subjects_filter``, paged
        by the server at 100,000 subjects) and reads each person not already
        cached — O(persons) requests and O(all person events) decoding, once per
        year close per area. Fine for a yearly job over a few hundred thousand
        persons (minutes); beyond that, keep an index (a projection, or a
        ``ledger.ref`` subject of persons with quota visits) and read only those.
        """
        prefix = area_prefix(admdvs)
        async for subject in self._person_subjects():
            psn_no = self._by_subject.get(subject)
            if psn_no is not None and psn_no in self._cache:
                entry = self._cache[psn_no]
                await self._catch_up(entry)
            else:
                try:
                    entry = await self._load(None, subject)
                except LookupError:
                    continue
            if _has_quota_visits(entry.person, prefix, year):
                yield entry.person.psn_no

    async def _person_subjects(self) -> AsyncIterator[str]:
        nc = self.js._nc                              # nats-py's stream_info does not page subjects
        api = f"{self.js._prefix}.STREAM.INFO.{self.stream}"
        offset = 0
        while True:
            request = {"subjects_filter": PERSON_SUBJECT.format("*"), "offset": offset}
            reply = await nc.request(api, json.dumps(request).encode(), timeout=max(self.timeout, 30.0))
            body = json.loads(reply.data)
            if "error" in body:
                raise APIError.from_error(body["error"])
            subjects = list((body.get("state") or {}).get("subjects") or {})
            for subject in subjects:
                yield subject
            offset += len(subjects)
            total = body.get("total", 0)
            if not subjects or offset >= total:
                return


class _CommitId(msgspec.Struct):
    commit_id: str = ""


_COMMIT_ID = msgspec.json.Decoder(_CommitId)


def _commit_id(data: bytes) -> str:
    """The id of a stored commit (empty for what is not one)."""
    try:
        return _COMMIT_ID.decode(data).commit_id
    except msgspec.DecodeError:
        return ""


def _actual_last(exc: APIError) -> int | None:
    """The subject's last sequence a 10071 names ("wrong last sequence: 40"), if it does."""
    tail = str(exc.description or "").rpartition(":")[2].strip()
    return int(tail) if tail.isdigit() else None


def _has_quota_visits(person: Person, prefix: str, year: int) -> bool:
    return any(r.facts.year == year and r.quota_base > 0 and r.facts.admdvs.startswith(prefix)
               for r in person.settlements.values())

