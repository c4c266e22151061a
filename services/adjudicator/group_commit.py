"""Group commit, the running half: one task per transport decides its waiting messages in batches (ADR 0016).

Why: under ``sync_interval: always`` a stored decision costs the stream a write and an fsync, and each
JetStream publish an ack to wait for. One atomic batch of up to `limit` commits is one store and one
ack, and the answers and acks of the whole batch go out together after it.

The transport hands each message to `put` (from its read loop: constant work) and gives two callbacks:
``answer(item, results)``, called only once the batch holding the message is acknowledged (or for a
duplicate, answered from state), and ``one_by_one(item)``, its own path for a single message (decide,
answer, ack, retry, dead-letter), used for barriers, unreadable messages, members the batch could not
decide, every member of a failed batch, and whenever fewer than `min_batch` members are ready (a lone
request pays no batch: on an R1 file store a batch has a fixed cost of several fsyncs).

Order: batches are planned in arrival order (services/adjudicator/batch.py `plan`); a person or key
with a message still being decided (in a batch or one by one) is busy, and its next message waits, so
each person's messages are decided in the order they came. At most `depth` batches are decided or stored at
once: meanwhile what arrives waits and makes the next batch larger. Below that, fewer than `min_batch`
ready members go one by one at once, as without group commit (light load keeps its latency).
A barrier waits until nothing runs and runs alone. Other transports in the process submit through the
same `Adjudicator`; a batch holds its persons' lanes (`Adjudicator.holding`) so they never overlap.
"""
from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from events.results import Outbound
from services.adjudicator.batch import Waiting, decide_batch, plan
from services.adjudicator.service import Adjudicator

log = structlog.get_logger(component="ledger.group_commit")

DEFAULT_LIMIT = 256       # commits per batch; with their key claims ≤ 512 messages, under the server's 1,000
MAX_LIMIT = 499
DEFAULT_MIN_BATCH = 16    # fewer ready than this go one by one (ADR 0016: a batch's fixed cost on R1)
DEFAULT_DEPTH = 1         # batches at once: two at once collided on the server (ADR 0016, measured)


@dataclass(frozen=True)
class GroupCommitConfig:
    """LEDGER_GROUP_COMMIT (commits per batch, 0: off), LEDGER_GROUP_COMMIT_MIN, LEDGER_GROUP_COMMIT_DEPTH."""
    limit: int = DEFAULT_LIMIT
    min_batch: int = DEFAULT_MIN_BATCH
    depth: int = DEFAULT_DEPTH

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> GroupCommitConfig:
        def whole(name: str, default: int, least: int) -> int:
            raw = (env.get(name) or "").strip()
            try:
                value = int(raw) if raw else default
            except ValueError:
                raise ValueError(f"{name} must be an integer, got {raw!r}") from None
            if value < least:
                raise ValueError(f"{name} must be at least {least}, got {raw!r}")
            return value
        limit = whole("LEDGER_GROUP_COMMIT", cls.limit, 0)
        if limit > MAX_LIMIT:
            raise ValueError(f"LEDGER_GROUP_COMMIT must be at most {MAX_LIMIT} (the server takes 1,000 messages "
                             "a batch, and each commit may add a key claim)")
        return cls(limit, whole("LEDGER_GROUP_COMMIT_MIN", cls.min_batch, 1),
                   whole("LEDGER_GROUP_COMMIT_DEPTH", cls.depth, 1))

    def build(self, adjudicator: Adjudicator, answer: Callable[[Any, list[Outbound]], Awaitable[None]],
              one_by_one: Callable[[Any], Awaitable[None]], transport: str) -> GroupCommit | None:
        """The group commit for one transport; None when switched off (every message one by one)."""
        if not self.limit:
            return None
        return GroupCommit(adjudicator, answer=answer, one_by_one=one_by_one, limit=self.limit,
                           min_batch=self.min_batch, depth=self.depth, transport=transport)


class GroupCommit:
    def __init__(self, adjudicator: Adjudicator, *, answer: Callable[[Any, list[Outbound]], Awaitable[None]],
                 one_by_one: Callable[[Any], Awaitable[None]], limit: int = DEFAULT_LIMIT,
                 min_batch: int = DEFAULT_MIN_BATCH, depth: int = DEFAULT_DEPTH, transport: str = ""):
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"a batch holds 1 to {MAX_LIMIT} commits (each may add a key claim; the server "
                             "takes at most 1,000 messages a batch)")
        self.adjudicator = adjudicator
        self.answer = answer
        self.one_by_one = one_by_one
        self.limit = limit
        self.min_batch = max(1, min(min_batch, limit))
        self.depth = max(1, depth)
        self.window = 4 * limit               # messages scanned per plan
        self.transport = transport
        self._waiting: deque[Waiting] = deque()
        self._ready = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._units: set[asyncio.Task] = set()
        self._busy_persons: dict[str, int] = {}
        self._busy_keys: dict[tuple[str, str], int] = {}
        self._barrier = False
        self._batches = 0
        self._stopping = False
        self.batches = self.batched = self.fell_back = 0

    def put(self, item: Any, raw: bytes, source: str) -> None:
        self._waiting.append(Waiting(item, raw, source))
        self._ready.set()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self, timeout: float = 10.0) -> None:
        """Decide and answer what is waiting, then end."""
        self._stopping = True
        self._ready.set()
        if self._task is not None:
            done, _ = await asyncio.wait([self._task], timeout=timeout)
            if not done:
                self._task.cancel()
                for unit in self._units:
                    unit.cancel()

    async def _run(self) -> None:
        while True:
            self._ready.clear()
            try:
                launched = self._launch()
            except Exception as exc:               # never stop taking batches; the callbacks log their own
                log.error("group_commit_plan_failed", error=repr(exc))
                launched = False
            if launched:
                await asyncio.sleep(0)             # let the unit start; then plan again
                continue
            if self._stopping and not self._waiting and not self._units:
                return
            await self._ready.wait()

    def _launch(self) -> bool:
        """Start the next unit if one may start now; False when there is nothing to start."""
        entries = self._waiting
        if not entries or self._barrier or self._batches >= self.depth:
            return False                           # (at depth: what arrives meanwhile makes the next batch)
        if entries[0].tag().barrier:
            if self._units:
                return False                       # a barrier waits for everything before it
            self._barrier = True
            self._spawn(self._alone(entries.popleft()), [])
            return True
        window = [entries[i] for i in range(min(len(entries), self.window))]
        chosen = plan([w.tag() for w in window], self.limit, self._busy_persons.keys(), self._busy_keys.keys())
        members = [window[i] for i in chosen.members]
        singles = [window[i] for i in chosen.singles]
        if not members and not singles:
            return False
        taken = set(chosen.members) | set(chosen.singles)
        for _ in range(len(window)):
            entries.popleft()
        entries.extendleft(reversed([w for i, w in enumerate(window) if i not in taken]))
        for w in singles:
            self._spawn(self._alone(w), [])
        if len(members) >= self.min_batch:
            self._batches += 1
            self._spawn(self._batch(members), members)
        else:
            for w in members:
                self._spawn(self._alone(w), [w])
        return True

    def _spawn(self, coro: Any, holding: list[Waiting]) -> None:
        for w in holding:
            tag = w.tag()
            self._busy_persons[tag.psn_no] = self._busy_persons.get(tag.psn_no, 0) + 1   # type: ignore[index]
            if tag.key is not None:
                self._busy_keys[tag.key] = self._busy_keys.get(tag.key, 0) + 1
        task = asyncio.create_task(coro)
        self._units.add(task)
        task.add_done_callback(lambda t: self._done(t, holding))

    def _done(self, task: asyncio.Task, holding: list[Waiting]) -> None:
        self._units.discard(task)
        for w in holding:
            tag = w.tag()
            _release(self._busy_persons, tag.psn_no)
            if tag.key is not None:
                _release(self._busy_keys, tag.key)
        if not task.cancelled() and task.exception() is not None:
            log.error("group_commit_unit_failed", error=repr(task.exception()))
        self._ready.set()

    async def _alone(self, waiting: Waiting) -> None:
        try:
            await self.one_by_one(waiting.item)
        finally:
            if waiting.tag().barrier:
                self._barrier = False

    async def _batch(self, members: list[Waiting]) -> None:
        """Decide and store `members` as one batch, answer them, and decide one by one those it could not."""
        started = time.perf_counter()
        try:
            async with self.adjudicator.holding([w.tag().psn_no for w in members]):   # type: ignore[misc]
                results = await decide_batch(self.adjudicator.handler, members)
        except Exception as exc:                   # e.g. reference data unreadable: each meets it one by one
            log.warning("batch_not_decided", members=len(members), error=type(exc).__name__)
            results = [None] * len(members)
        finally:
            self._batches -= 1
            self._ready.set()
        answered = [(w, r) for w, r in zip(members, results) if r is not None]
        again = [w for w, r in zip(members, results) if r is None]
        self.batches += 1
        self.batched += len(answered)
        self.fell_back += len(again)
        metrics = self.adjudicator.metrics
        if metrics is not None:
            metrics.batch_stored(self.transport or "other", len(answered), len(again))
            elapsed = time.perf_counter() - started
            for _, r in answered:
                metrics.observe(self.transport or "other", r, elapsed)
        for w, r in answered:                      # in turn: they share one connection, no task each
            await self.answer(w.item, r)
        if again:
            await asyncio.gather(*(self.one_by_one(w.item) for w in again))


def _release(busy: dict, key: Any) -> None:
    left = busy[key] - 1
    if left:
        busy[key] = left
    else:
        del busy[key]
