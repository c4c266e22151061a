"""The `Store` on JetStream: one stream message per decision, guarded per person (ADR 0001).

Layout (stream LEDGER, events/subjects.py):

* ``ledger.person.<person_key>`` — one `Commit` per decision of that person:
  its events sealed onto the person's hash chain, and the results given, so a
  repeat of any key is answered from the ledger itself (durable idempotency).
  Published with ``Nats-Expected-Last-Subject-Sequence`` = the version the
  decision was made on (0 for a new person); the server refuses a stale writer
  (err_code 10071) and we raise `Conflict`, so the handler reloads and decides
  again. Two adjudicators can never both spend the same room under a cap.
* ``ledger.ref.key.<hash>`` — the claim of a global key (``setl_id``, ``grant_id``) by one person
  (services/nats/key_claims.py).
* ``ledger.ref.<kind>`` — reference decisions: ``medins``, ``year_close``
  (guarded the same way on its own subject, so a repeated close is a
  ``duplicate`` across processes) and ``rejected`` (dead letters, unguarded:
  they depend on no shared state).

Person state lives in a bounded LRU cache (services/nats/person_cache.py) and
is rebuilt from the person's subject on a miss (services/nats/person_reader.py); after a conflict the cached state is caught up from its
version instead of being rebuilt from scratch. Reference data is followed by
`ReferenceFollower` (services/nats/reference.py).

Every commit is sealed for its subject (events/chain.py `encode_sealed`), and
every commit read back must carry a valid seal and continue the person's chain.
One that does not, or a subject found shorter than the version decided on,
is reported to the integrity guard (services/integrity/guard.py), which then
refuses that person: `LedgerHeld`, answered `unavailable` (ADR 0010). The guard
is also asked before each decision whether the whole stream is held.

Appending is services/nats/appending.py. Concurrency inside one process: the state a decision reads and the version it
publishes against are taken without an intervening ``await`` (the handler calls
``append`` right after the pure ``decide``; ``append`` reads the version before
its first await), and cached state is only changed in whole commits between
awaits, so a decision made on state that has moved since can only lose its
race with a `Conflict`. The adjudicator still runs one decision per person at a
time (services/adjudicator/service.py) to keep per-person order and avoid
needless conflicts.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from events.subjects import PERSON_SUBJECT, STREAM
from services.adjudicator.store import LedgerHeld
from services.integrity.findings import FORGED_MESSAGE, Finding
from services.nats.appending import Appending
from services.nats.batch_append import append_batch
from services.nats.key_claims import KeyClaims
from services.nats.person_cache import CachedPerson, PersonCache
from services.nats.person_reader import PersonReader
from services.nats.publisher import JetStreamPublisher
from services.nats.reads import person_subjects
from services.nats.reference import POLL_EVERY, ReferenceFollower
from services.policy.decision import Decision
from services.policy.engine import Reference
from services.policy.state import Person
from services.policy.year_end import area_prefix, has_quota_visits
from services.runtime.secrets import person_key

DEFAULT_CACHE_SIZE = 100_000


class JetStreamStore(Appending):
    """`Store` (services/adjudicator/store.py) over the LEDGER stream; see the module docstring."""

    def __init__(self, js: Any, secret: bytes, *, seal_key: bytes, cache_size: int = DEFAULT_CACHE_SIZE,
                 timeout: float = 5.0, metrics: Any = None, stream: str = STREAM, publisher: Any = None,
                 ref_poll_every: float = POLL_EVERY, guard: Any = None):
        self.js = js
        self._secret = secret
        self._seal_key = seal_key
        self.guard = guard                            # services.integrity.guard.IntegrityGuard, or None
        if guard is not None:
            guard.on_epoch = self.reset
        self._cache = PersonCache(cache_size)
        self.cache_size = cache_size
        self.timeout = timeout
        self.metrics = metrics
        self.stream = stream
        self.ref = ReferenceFollower(js, seal_key, stream=stream, timeout=timeout, poll_every=ref_poll_every,
                                     on_forged=self._refuse)
        self.publisher = publisher                    # services.nats.publisher.JetStreamPublisher
        self._own_publisher = publisher is None
        self.reader = PersonReader(js, seal_key, held=self._held, stream=stream, timeout=timeout, metrics=metrics)
        self.keys = KeyClaims(js, secret, seal_key, size=cache_size, stream=stream, timeout=timeout,
                              forged=lambda subject, seq, why: self._held(subject, seq, FORGED_MESSAGE, why))

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
            self._cache.use(psn_no)
            if not entry.stale:
                return entry.person
            await self._catch_up(entry)
            return entry.person
        return (await self._load(psn_no, self.subject_of(psn_no))).person

    def cached(self, psn_no: str) -> bool:
        """Whether `person(psn_no)` answers from memory, without reading the stream."""
        entry = self._cache.get(psn_no)
        return entry is not None and not entry.stale

    async def append_batch(self, pairs: list[tuple[Decision, Person]]) -> None:
        """Several persons' decisions as one atomic batch (group commit, services/nats/batch_append.py)."""
        await append_batch(self, pairs)

    def forget(self, psn_no: str) -> None:
        """After a conflict: the next `person()` catches the cached state up from the stream."""
        entry = self._cache.get(psn_no)
        if entry is not None:
            entry.stale = True

    async def _load(self, psn_no: str | None, subject: str) -> CachedPerson:
        person = await self.reader.fold(psn_no, subject)
        if self.guard is not None:
            await self.guard.confirm()      # a shorter chain that holds is no proof: the stream lost nothing
        current = self._cache.get(person.psn_no)
        if current is not None and not current.stale and current.person.version >= person.version:
            return current                           # someone appended while we were reading
        entry = CachedPerson(person, subject)
        self._cache.put(person.psn_no, entry)
        return entry

    async def _catch_up(self, entry: CachedPerson) -> None:
        await self.reader.catch_up(entry.person, entry.subject)
        entry.stale = False

    @property
    def cached_persons(self) -> int:
        return len(self._cache)

    # --- global keys -------------------------------------------------------------------

    async def key_taken(self, key: tuple[str, str], psn_no: str, fresh: bool) -> bool:
        holder = await self.keys.holder(key, fresh)
        return holder is not None and holder != person_key(self._secret, psn_no)

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
        async for subject in person_subjects(self.js, stream=self.stream, timeout=max(self.timeout, 30.0)):
            entry = self._cache.on_subject(subject)
            if entry is not None:
                await self._catch_up(entry)
            else:
                try:
                    entry = await self._load(None, subject)
                except LookupError:
                    continue
            if has_quota_visits(entry.person, prefix, year):
                yield entry.person.psn_no
