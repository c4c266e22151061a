"""Reference data (hospitals, closed years) as every adjudicator process sees it, kept current.

It is only ever read from stream LEDGER by sequence (batched direct get after
the last sequence applied per subject), so none can be skipped. A plain core
subscription on ``ledger.ref.<kind>`` — every process's publishes reach it —
is the cue to catch up; a timer makes up for cues core NATS may drop; callers
catch up on demand (an unknown hospital, after writing a reference decision).
Not an ordered push consumer: past its pending limits nats-py drops messages
after recording their sequence, so a gap would go unnoticed.
"""
from __future__ import annotations

import asyncio
from typing import Any

import structlog

from events.upcast import decode_commit
from services.policy.engine import Reference
from services.runtime.stream import REF_SUBJECT, STREAM, read_subject

log = structlog.get_logger(component="ledger.reference")

REF_KINDS = ("medins", "year_close")       # kinds that shape decisions; `rejected` is write-only here
POLL_EVERY = 5.0                           # seconds between catch-ups when no cue came


class ReferenceFollower:
    def __init__(self, js: Any, *, stream: str = STREAM, timeout: float = 5.0, poll_every: float = POLL_EVERY):
        self.js, self.stream, self.timeout, self.poll_every = js, stream, timeout, poll_every
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
                self._apply(kind, msg.seq, msg.data)

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

    def _apply(self, kind: str, seq: int, data: bytes) -> None:
        if seq <= self.applied[kind]:
            return                                    # already applied (concurrent catch-ups overlap)
        for event in decode_commit(data).events:
            self.reference.evolve(event)
        self.applied[kind] = seq
        self.reference.version = max(self.reference.version, seq)
