"""The adjudicator's side of loss detection: decide only on the stream the ledger was built on (ADR 0010).

Every adjudicator process (inside `ledger run` and each `services.cli.worker`) runs one.
It has no PostgreSQL, so it judges from two things it can read cheaply, at start and every
`poll_every` seconds:

* the stream's info (creation time, first and last sequence, deleted count), against the sealed
  record in KV bucket LEDGER_INTEGRITY (services/integrity/state.py), which outlives the stream,
  and against the highest sequence this process has seen (acks and earlier polls);
* that record's findings, written by the read side, which compares the stream with PostgreSQL.

Besides, the store reports what it meets while loading a person: a message the ledger did not seal,
a commit that does not continue the chain, a subject shorter than the version it had cached. And a
person read whole from the stream (not cached here) is trusted only once the stream's info, asked
*after* that read, shows nothing lost (`confirm`): a leader that lost a range of sequences (a
corrupted replica elected, Jepsen's NATS 2.12.1 finding) serves a person whose last commits fell in
it as a shorter chain that still holds, and between polls that person would be decided again (make
chaos saw a settlement paid twice so). The
whole ledger is held on a stream-level finding; one person on a person finding. `check` raises
`LedgerHeld` and the message gets `unavailable`. When the record's epoch changes (a restore, an
accepted loss), the process drops what it cached and the holds found here.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from services.adjudicator.store import LedgerHeld
from services.integrity import findings as fc
from services.integrity.findings import Baseline, Finding, StreamSeen, check_stream
from services.integrity.observe import see_stream
from services.integrity.state import IntegrityState, Unsealed, bucket, create_state, read_state
from events.subjects import STREAM

log = structlog.get_logger(component="ledger.integrity")

POLL_EVERY = 2.0      # seconds between checks of the stream and the record


class IntegrityGuard:
    def __init__(self, js: Any, seal_key: bytes, *, stream: str = STREAM, poll_every: float = POLL_EVERY,
                 metrics: Any = None, replicas: int | None = None):
        self.js, self.seal_key, self.stream, self.poll_every = js, seal_key, stream, poll_every
        self.metrics, self.replicas = metrics, replicas
        self.kv: Any = None
        self.whole: list[Finding] = [Finding(fc.NOT_CHECKED, "the stream has not been checked yet")]
        self.persons: dict[str, Finding] = {}     # person_key -> what the read side found
        self.local: dict[str, Finding] = {}       # person_key (or subject of a reference) -> found here
        self.high_water = 0
        self.epoch: int | None = None
        self.on_epoch: Callable[[], Awaitable[None]] | None = None    # the store drops its caches
        self.active = True                        # any hold at all: the fast path checks only this
        self._alarmed: set[tuple[str, str | None]] = set()
        self._task: asyncio.Task | None = None
        self._state: IntegrityState | None = None     # the record as last read
        self._next: asyncio.Future | None = None      # the confirmation the callers arriving now wait for
        self._confirming: asyncio.Task | None = None  # the task answering them, one at a time

    async def start(self) -> None:
        self.kv = await bucket(self.js, self.replicas)
        await self.refresh()
        self._task = asyncio.create_task(self._poll(), name="integrity-guard")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # --- the decision path ----------------------------------------------------------------

    def check(self, subject: str | None) -> None:
        """Raise `LedgerHeld` if nothing may be decided for this subject (None: a reference decision)."""
        if not self.active:
            return
        whole = self.whole or [f for f in self.local.values() if f.whole_stream]
        if whole:
            raise LedgerHeld("the ledger is held until the stream is restored or the loss accepted: " +
                             ", ".join(sorted({f.code for f in whole})))
        if subject is not None:
            key = subject.rpartition(".")[2]
            found = self.local.get(key) or self.persons.get(key)
            if found is not None:
                raise LedgerHeld(f"this person's history is held until it is restored or the loss accepted: "
                                 f"{found.code}")

    def observed(self, seq: int) -> None:
        """A sequence the stream acknowledged: it may never go below it again."""
        if seq > self.high_water:
            self.high_water = seq

    def acked(self, seq: int, mark: int) -> None:
        """A publish begun when the highest sequence seen was `mark` was stored at `seq`. Sequences only
        grow, so `seq <= mark` means the stream went backwards (recreated, truncated) under us: hold
        everyone now, and raise `LedgerHeld` so this decision is answered `unavailable`, not as stored."""
        if seq > mark:
            self.observed(seq)
            return
        self.refuse(Finding(fc.STREAM_BEHIND_HIGH_WATER, f"the stream stored a publish at sequence {seq}, "
                                                        f"after it had reached {mark}", subject="ledger.>"))
        raise LedgerHeld("the ledger is held until the stream is restored or the loss accepted: "
                         f"{fc.STREAM_BEHIND_HIGH_WATER}")

    def refuse(self, finding: Finding) -> None:
        """The store met something the ledger did not write, or less than it had: hold, alarm."""
        key = finding.person_key or finding.subject or "-"
        if key not in self.local:
            self.local[key] = finding
            self._alarm(finding)
            self._settle()

    async def confirm(self) -> None:
        """After a person was read from the stream: raise `LedgerHeld` unless the stream's info, asked after
        that read, shows nothing lost. Callers arriving together share one request, begun after they came."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            if self._confirming is None:
                self._confirming = asyncio.create_task(self._confirm_rounds(), name="integrity-confirm")
        await asyncio.shield(self._next)
        self.check(None)

    async def _confirm_rounds(self) -> None:
        try:
            while self._next is not None:
                waiting, self._next = self._next, None
                try:
                    mark = self.high_water
                    _, seen = await see_stream(self.js, self.stream)
                    found = self._judge(self._state, seen, mark) if self._state is not None else []
                    if found:
                        self.whole = [*self.whole, *(f for f in found if f not in self.whole)]
                        self._settle()
                    waiting.set_result(None)
                except Exception as exc:             # NATS away: that load is not trusted, the caller retries
                    waiting.set_exception(exc)
        finally:
            self._confirming = None

    # --- checking ---------------------------------------------------------------------------

    async def refresh(self) -> None:
        # What was seen before (the record's high-water mark, our acks) is read before the stream: a
        # publish acknowledged in between must not look like the stream going backwards.
        mark = self.high_water
        state, unsealed = None, None
        try:
            state = await read_state(self.kv, self.seal_key)
        except Unsealed as bad:
            unsealed = Finding(fc.INTEGRITY_STATE_UNSEALED, str(bad))
        info, seen = await see_stream(self.js, self.stream)
        if state is None and unsealed is None and info is not None:
            state = await self._genesis(seen)
        if state is not None and self.epoch is not None and state.epoch != self.epoch:
            log.info("integrity_epoch_changed", epoch=state.epoch, before=self.epoch)
            if self.on_epoch is not None:
                await self.on_epoch()
            self.local.clear()
            self.high_water = mark = seen.last_seq
        whole = [unsealed] if unsealed is not None else self._judge(state, seen, mark)
        if state is not None:
            self._state = state
            self.epoch = state.epoch
            self.persons = {f.person_key: f for f in state.findings if f.person_key and not f.whole_stream}
        if not whole and seen.exists:
            self.observed(seen.last_seq)
        self.whole = whole
        self._settle()

    def _judge(self, state: IntegrityState | None, seen: StreamSeen, mark: int) -> list[Finding]:
        if state is None:
            return [Finding(fc.STREAM_MISSING, "no stream, and no record of one")]
        created = dt.datetime.fromisoformat(state.stream_created) if state.stream_created else seen.created
        baseline = Baseline(stream_created=created, high_water=max(state.high_water, mark))
        told = [f for f in state.findings if f.whole_stream]
        codes = {f.code for f in told}
        return [*told, *(f for f in check_stream(baseline, {}, seen) if f.code not in codes)]

    async def _genesis(self, seen: StreamSeen) -> IntegrityState | None:
        """A new ledger: no record yet. The read side, which remembers, overwrites it if it knows better."""
        state = IntegrityState(seen.created.isoformat() if seen.created else None, seen.last_seq, 0,
                               written_by="adjudicator: first record")
        if await create_state(self.kv, self.seal_key, state):
            log.info("integrity_record_created", stream_created=state.stream_created, last_seq=seen.last_seq)
            return state
        return await read_state(self.kv, self.seal_key)

    def _settle(self) -> None:
        """Recompute `active`, the gauges and the alarms after any change."""
        current = [*self.whole, *self.persons.values(), *self.local.values()]
        self.active = bool(current)
        seen = {(f.code, f.person_key or f.subject) for f in current}
        for finding in current:
            self._alarm(finding)
        for gone in self._alarmed - seen:
            log.info("stream_loss_cleared", finding=gone[0], person_key=gone[1], seen_by="adjudicator")
        self._alarmed &= seen
        if self.metrics is not None:
            self.metrics.held(current)

    def _alarm(self, finding: Finding) -> None:
        key = (finding.code, finding.person_key or finding.subject)
        if key in self._alarmed or finding.code == fc.NOT_CHECKED:
            return
        self._alarmed.add(key)
        log.critical("stream_loss_detected", finding=finding.code, person_key=finding.person_key,
                     subject=finding.subject if finding.person_key is None else None, seq=finding.seq,
                     detail=finding.detail, seen_by="adjudicator")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_every)
            try:
                await self.refresh()
            except Exception as exc:            # NATS away: keep the last judgement, try again
                log.warning("integrity_check_failed", error=repr(exc))
