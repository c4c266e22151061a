"""The read side's loss detection: the stream against what PostgreSQL remembers, at start and continuously.

Runs beside the projector (`ledger run`'s read side, `ledger project`). Every `every` seconds the
stream-level check (services/integrity/findings.py `check_stream`, and the forged messages the
projector recorded); every `page_every` seconds one page of `page` projected persons, whose chain
head in `ledger_event` is compared with the last commit on their subject (direct gets): a 20,000-
person ledger is swept in 20,000 / page × page_every seconds, over and over. A round begins at most
every `round_every` seconds: a smaller ledger rests between rounds rather than re-reading every
subject several times a second (measured in a chaos scenario of 2,500 persons: the three monitors'
sweeps were 13% of all the CPU it used). The person sweep rests while a stream-level finding stands
(every person would be one). A person found short or different is read again from the stream leader
before it is a finding: on an R3 stream a direct get may be answered by a follower that is still
catching up (after a restart), whose subject only looks shorter.

What it finds it says everywhere at once: `/ready` (`ready_check`), the `ledger_stream_loss` gauge,
an alarm log line (`stream_loss_detected`, level critical) when a finding appears, and the sealed
record in KV bucket LEDGER_INTEGRITY that every adjudicator reads (services/integrity/state.py).
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from events.chain import seal_key_id
from services.integrity.baseline import (checkpoints_of, chain_breaks, forged_findings, projected_heads,
                                         raise_high_water, remembered)
from services.integrity.findings import (FORGED_MESSAGE, INTEGRITY_STATE_UNSEALED, SEAL_KEY_MISMATCH, Baseline,
                                         Finding, StreamSeen, check_person, check_stream, summary)
from services.integrity.observe import holds_at, see_stream, see_subject, see_subjects
from services.integrity.state import IntegrityState, Unsealed, bucket, write_state
from events.subjects import STREAM

log = structlog.get_logger(component="ledger.integrity")

MAX_LISTED = 1000        # persons named in the KV record; past that the whole ledger is held


class IntegrityMonitor:
    def __init__(self, pool: Any, js: Any, seal_key: bytes, *, metrics: Any = None, stream: str = STREAM,
                 every: float = 3.0, page: int = 250, page_every: float = 0.5, round_every: float = 30.0,
                 replicas: int | None = None):
        self.pool, self.js, self.seal_key, self.metrics, self.stream = pool, js, seal_key, metrics, stream
        self.every, self.page, self.page_every, self.replicas = every, page, page_every, replicas
        self.round_every = round_every
        self._round_began: float | None = None
        self.key_id = seal_key_id(seal_key)
        self.remembered: list[Finding] = []        # stream-level, and the forged messages projected
        self.persons: dict[str, Finding] = {}      # person_key -> finding of the sweep
        self.baseline: Baseline | None = None
        self.seen: StreamSeen | None = None
        self.checked_at: float | None = None
        self.kv: Any = None
        self._cursor = ""
        self._published: IntegrityState | None = None
        self._alarmed: set[tuple[str, str | None, int | None]] = set()

    @property
    def findings(self) -> list[Finding]:
        out, keys = [], set()
        for finding in [*self.remembered, *self.persons.values()]:
            key = (finding.code, finding.person_key or finding.subject, finding.seq)
            if key not in keys:
                keys.add(key)
                out.append(finding)
        return out

    @property
    def whole_stream(self) -> list[Finding]:
        return [f for f in self.remembered if f.whole_stream]

    # --- checks -------------------------------------------------------------------------------

    async def check_stream(self) -> list[Finding]:
        """The stream-level findings and the forged messages, fresh; raises the high-water mark."""
        async with self.pool.acquire() as conn:
            try:
                baseline, checkpoints = await remembered(conn, self.js, self.seal_key, self.stream)   # first
                found = []
            except Unsealed as bad:
                baseline, checkpoints = None, await checkpoints_of(conn)
                found = [Finding(INTEGRITY_STATE_UNSEALED, str(bad))]
            _, seen = await see_stream(self.js, self.stream)
            found += check_stream(baseline, checkpoints, seen, self.key_id)
            if not any(f.code == SEAL_KEY_MISMATCH for f in found):
                found += await forged_findings(conn)
            if baseline is not None and seen.exists and not found and seen.last_seq > baseline.high_water:
                await raise_high_water(conn, seen.last_seq, self.stream)
        if any(f.whole_stream for f in found) or (
                baseline is not None and self.baseline is not None and baseline.epoch != self.baseline.epoch):
            self.persons.clear()                   # held as a whole (the sweep rests), or a new epoch
        self.baseline, self.seen, self.remembered = baseline, seen, found
        self.checked_at = time.monotonic()
        return found

    async def sweep_page(self) -> bool:
        """Check the next page of projected persons; True when the sweep has come round to the start."""
        if self._cursor == "":
            self._round_began = time.monotonic()
        async with self.pool.acquire() as conn:
            heads = await projected_heads(conn, self._cursor, self.page)
            breaks = await chain_breaks(conn, [h[0] for h in heads]) if heads else []
        for head, seen in zip(heads, await see_subjects(self.js, self.seal_key, heads, stream=self.stream)):
            key, subject, seq, hash_ = head
            finding = check_person(key, subject, seq, hash_, seen)
            if finding is not None:     # a direct get may come from a replica behind the leader: ask the leader
                seen = await see_subject(self.js, self.seal_key, subject, seq, self.stream, direct=False)
                finding = check_person(key, subject, seq, hash_, seen)
            if finding is None:
                self.persons.pop(key, None)
            else:
                self.persons[key] = finding
        for key, subject, seq in breaks:        # what the stream still holds there is not the ledger's to fold
            if await holds_at(self.js, subject, seq, self.stream):
                self.persons[key] = Finding(FORGED_MESSAGE, "does not continue the person's chain", key, subject, seq)
        low, high = self._cursor, heads[-1][0] if len(heads) == self.page else None
        seen = {h[0] for h in heads}
        for key in [k for k in self.persons if k > low and (high is None or k <= high) and k not in seen]:
            del self.persons[key]               # no longer projected (the read models were projected again)
        self._cursor = high or ""
        return self._cursor == ""

    def _sweep_due(self) -> bool:
        """Mid-round always; a new round once `round_every` seconds have passed since the last began."""
        if self._cursor or self._round_began is None:
            return True
        return time.monotonic() - self._round_began >= self.round_every

    async def check_all(self) -> list[Finding]:
        """Everything now, the whole person sweep included (`ledger verify`, restore, accept-loss)."""
        await self.check_stream()
        if not self.whole_stream:
            self._cursor = ""
            while not await self.sweep_page():
                pass
        return self.findings

    # --- telling ------------------------------------------------------------------------------

    async def publish(self) -> None:
        """Write the sealed record the adjudicators read, when what it says has changed."""
        seen = self.seen
        if seen is None or (self.baseline is None and not seen.exists):
            return
        if any(f.code in (SEAL_KEY_MISMATCH, INTEGRITY_STATE_UNSEALED) for f in self.remembered):
            return                               # not this process's to say: its key is not the ledger's
        created = self.baseline.stream_created if self.baseline else seen.created
        found = self.findings
        named = [f for f in found if not f.whole_stream]
        if len(named) > MAX_LISTED:
            found = [f for f in found if f.whole_stream] + [Finding(named[0].code, f"{len(named)} persons affected")]
        state = IntegrityState(created.isoformat() if created else None,
                               self.baseline.high_water if self.baseline else seen.last_seq,
                               self.baseline.epoch if self.baseline else 0, found, written_by="read side")
        if state == self._published:
            return
        if self.kv is None:
            self.kv = await bucket(self.js, self.replicas)
        await write_state(self.kv, self.seal_key, state)
        self._published = state

    def settle(self) -> None:
        """Alarm on new findings, say when they clear, set the gauge."""
        current = self.findings
        keys = {(f.code, f.person_key or f.subject, f.seq) for f in current}
        for f in current:
            key = (f.code, f.person_key or f.subject, f.seq)
            if key not in self._alarmed:
                self._alarmed.add(key)
                log.critical("stream_loss_detected", finding=f.code, person_key=f.person_key, seq=f.seq,
                             subject=f.subject if f.person_key is None else None, detail=f.detail,
                             seen_by="read side")
        for gone in self._alarmed - keys:
            log.info("stream_loss_cleared", finding=gone[0], person_key=gone[1], seq=gone[2], seen_by="read side")
        self._alarmed &= keys
        if self.metrics is not None:
            self.metrics.loss_found(current)

    async def ready_check(self) -> tuple[str, bool, str]:
        """A `deps.ready_checks` entry: fails while anything is found, with what."""
        if self.checked_at is None:
            return "integrity", False, "not checked yet"
        found = self.findings
        return "integrity", not found, summary(found)

    async def tick(self) -> None:
        """One round: the stream when due, a page of persons, then tell."""
        if self.checked_at is None or time.monotonic() - self.checked_at >= self.every:
            await self.check_stream()
        if not self.whole_stream and self._sweep_due():
            await self.sweep_page()
        self.settle()
        await self.publish()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except Exception as exc:             # NATS or PostgreSQL away: the last findings stand
                log.warning("integrity_check_failed", error=repr(exc))
            try:
                async with asyncio.timeout(self.page_every):
                    await stop.wait()
            except TimeoutError:
                pass
