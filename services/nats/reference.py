"""Reference data (hospitals, closed years) as every adjudicator process sees it, kept current.

It is only ever read from stream LEDGER by sequence (batched direct get after
the last sequence applied per subject), so none can be skipped. A plain core
subscription on ``ledger.ref.<kind>`` — every process's publishes reach it —
is the cue to catch up; a timer makes up for cues core NATS may drop; callers
catch up on demand (an unknown hospital, after writing a reference decision).
Not an ordered push consumer: past its pending limits nats-py drops messages
after recording their sequence, so a gap would go unnoticed.

A reference commit the ledger did not seal is never applied: the follower stops
at it and reports it (`on_forged`); the integrity guard then holds the whole
ledger, since every decision reads reference data (ADR 0010).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from events.chain import Unsealed, read_sealed
from events.upcast import decode_commit
from services.integrity.findings import FORGED_MESSAGE, Finding
from services.policy.engine import Reference
from events.subjects import REF_SUBJECT, STREAM
from services.nats.reads import read_subject

log = structlog.get_logger(component="ledger.reference")

REF_KINDS = ("medins", "year_close")       # kinds that shape decisions; `rejected` is write-only here
POLL_EVERY = 5.0                           # seconds between catch-ups when no cue came


class ReferenceFollower:
    def __init__(self, js: Any, seal_key: bytes, *, stream: str = STREAM, timeout: float = 5.0,
                 poll_every: float = POLL_EVERY, on_forged: Callable[[Finding], None] | None = None):
        self.js, self.stream, self.timeout, self.poll_every = js, stream, timeout, poll_every
        self.seal_key, self.on_forged = seal_key, on_forged
        self.reference = Reference()
        self.applied = {kind: 0 for kind in REF_KINDS}      # last stream sequence applied, per kind
        self._subs: list[Any] = []
        self._cue = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.catch_up()
        nc = self.js._nc              # a plain subscription: the cue needs no consumer on the server
        for kind in REF_KINDS:
            self._subs.append(await nc.subscribe(REF_SUBJECT.format(kind), cb=self._on_cue))
        self._task = asyncio.create_task(self._follow())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        subs, self._subs = self._subs, []
        for sub in subs:
            try:
                await sub.unsubscribe()
            except Exception:          # connection already closing: nothing to undo on the server
                pass

    async def catch_up(self, *kinds: str) -> None:
        kinds = kinds or REF_KINDS
        batches = await asyncio.gather(*(
            read_subject(self.js, REF_SUBJECT.format(kind), stream=self.stream, after_seq=self.applied[kind],
                         timeout=self.timeout) for kind in kinds))
        for kind, msgs in zip(kinds, batches):
            for msg in msgs:
                if not self._apply(kind, msg.seq, msg.data):
                    break

    async def reset(self) -> None:
        """Follow the stream from its start again (it was restored, or a loss accepted)."""
        fresh = ReferenceFollower(self.js, self.seal_key, stream=self.stream, timeout=self.timeout)
        await fresh.catch_up()
        self.reference, self.applied = fresh.reference, fresh.applied

    async def _on_cue(self, msg: Any) -> None:
        self._cue.set()

    async def _follow(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.poll_every):
                    await self._cue.wait()
            except TimeoutError:
                pass
            self._cue.clear()
            try:
                await self.catch_up()
            except Exception as exc:       # NATS away: the next cue or tick tries again
                log.warning("reference_catch_up_failed", error=repr(exc))

    def _apply(self, kind: str, seq: int, data: bytes) -> bool:
        """Apply one reference commit; False (and nothing applied) if the ledger did not seal it."""
        if seq <= self.applied[kind]:
            return True                               # already applied (concurrent catch-ups overlap)
        subject = REF_SUBJECT.format(kind)
        try:
            read_sealed(self.seal_key, subject, data)
        except Unsealed as bad:
            if self.on_forged is not None:
                self.on_forged(Finding(FORGED_MESSAGE, str(bad), None, subject, seq))
            return False
        for event in decode_commit(data).events:
            self.reference.evolve(event)
        self.applied[kind] = seq
        self.reference.version = max(self.reference.version, seq)
        return True
