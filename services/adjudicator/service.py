"""The adjudicator as a service: what every transport calls, around the one decision path.

`Adjudicator.submit(raw, source, transport)` → `Handler.handle(raw, source)`,
adding what a server needs and a replay does not:

* **Order**: messages of one person are decided one at a time, in the order
  they were submitted (a FIFO lane per ``psn_no``); messages of different
  persons run concurrently. Reference messages (``medins``, ``year_close``)
  are barriers: they wait for everything submitted before them and everything
  after waits for them — a feed then decides exactly as ``ledger replay`` of
  the same lines. Submission order is the order of ``submit`` calls (each call
  takes its place before its first ``await``).
* **Metrics**: results by type/result/transport and decision latency.
* **Dead letters for crashes**: `dead_letter` records a message that cannot be
  decided at all (``poison_message``) through the same engine and store.

Across processes there is no order between replicas; the per-person
expected-sequence guard keeps every decision consistent (ADR 0001).
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import structlog

from events.limits import MAX_MESSAGE_BYTES, unreadable
from events.results import Outbound
from services.adjudicator.handler import Handler

log = structlog.get_logger(component="ledger.adjudicator")

BARRIER_TYPES = frozenset({"medins", "year_close"})


class _Peek(msgspec.Struct):
    msg_type: Any = None
    psn_no: Any = None


_PEEK = msgspec.json.Decoder(_Peek)


def peek(raw: bytes) -> tuple[str | None, str | None]:
    """(msg_type, psn_no) if the bytes are a JSON object carrying them as strings; else Nones.

    Bytes the decoder refuses unread (events.limits: too large, not UTF-8, too deep) are not parsed here
    either: they would raise RecursionError out of msgspec, or cost a parse for nothing.
    """
    if len(raw) > MAX_MESSAGE_BYTES or unreadable(raw) is not None:
        return None, None
    try:
        found = _PEEK.decode(raw)
    except (msgspec.DecodeError, ValueError):
        return None, None
    msg_type = found.msg_type if isinstance(found.msg_type, str) else None
    psn_no = found.psn_no if isinstance(found.psn_no, str) and found.psn_no else None
    return msg_type, psn_no


def redact(text: str, raw: bytes) -> str:
    """`text` (e.g. an exception's repr, for a log line) without the message's psn_no in it."""
    psn_no = peek(raw)[1]
    return text.replace(psn_no, "<psn_no>") if psn_no else text


class OrderedGate:
    """A FIFO readers-writer gate: shared holders run together, an exclusive holder runs alone."""

    def __init__(self) -> None:
        self._readers = 0
        self._writer = False
        self._queue: deque[tuple[asyncio.Future, bool]] = deque()

    async def acquire(self, exclusive: bool) -> None:
        if not self._queue and not self._writer and (not exclusive or self._readers == 0):
            if exclusive:
                self._writer = True
            else:
                self._readers += 1
            return
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((fut, exclusive))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(exclusive)        # granted just as we were cancelled: give it back
            else:
                self._queue.remove((fut, exclusive))
                self._wake()
            raise

    def release(self, exclusive: bool) -> None:
        if exclusive:
            self._writer = False
        else:
            self._readers -= 1
        self._wake()

    def _wake(self) -> None:
        while self._queue and not self._writer:
            fut, exclusive = self._queue[0]
            if fut.done():
                self._queue.popleft()
                continue
            if exclusive:
                if self._readers:
                    return
                self._queue.popleft()
                self._writer = True
                fut.set_result(None)
                return
            self._queue.popleft()
            self._readers += 1
            fut.set_result(None)


class Adjudicator:
    def __init__(self, handler: Handler, metrics: Any = None):
        self.handler = handler
        self.metrics = metrics
        self._gate = OrderedGate()
        self._tails: dict[str, asyncio.Future] = {}
        self.inflight = 0

    async def submit(self, raw: bytes, source: str = "", transport: str = "") -> list[Outbound]:
        """Decide one inbound message; raises only if it could not be decided (retry it later)."""
        started = time.perf_counter()
        msg_type, psn_no = peek(raw)
        exclusive = msg_type in BARRIER_TYPES
        # Take our place in line before the first await: submission order is decision order.
        prev = fut = None
        if psn_no is not None and not exclusive:
            prev = self._tails.get(psn_no)
            fut = asyncio.get_running_loop().create_future()
            self._tails[psn_no] = fut
        self.inflight += 1
        try:
            await self._gate.acquire(exclusive)
            try:
                if prev is not None and not prev.done():
                    await prev
                results = await self.handler.handle(raw, source)
            finally:
                self._gate.release(exclusive)
        except BaseException:
            if self.metrics is not None:
                self.metrics.errors.labels(transport or "other").inc()
            raise
        finally:
            self.inflight -= 1
            if fut is not None:
                fut.set_result(None)
                if self._tails.get(psn_no) is fut:   # type: ignore[arg-type]
                    del self._tails[psn_no]           # type: ignore[arg-type]
        if self.metrics is not None:
            self.metrics.observe(transport or "other", results, time.perf_counter() - started)
        return results

    @contextlib.asynccontextmanager
    async def holding(self, psn_nos: list[str]) -> AsyncIterator[None]:
        """Take the lanes of `psn_nos` as one submission (a group commit, services/adjudicator/batch.py):
        in line after what was submitted for them before, ahead of what comes after, and behind barriers."""
        loop = asyncio.get_running_loop()
        prevs, mine = [], []
        for psn_no in psn_nos:
            prev = self._tails.get(psn_no)
            if prev is not None:
                prevs.append(prev)
            fut = self._tails[psn_no] = loop.create_future()
            mine.append((psn_no, fut))
        self.inflight += len(psn_nos)
        try:
            await self._gate.acquire(False)
            try:
                for prev in prevs:
                    if not prev.done():
                        await prev
                yield
            finally:
                self._gate.release(False)
        finally:
            self.inflight -= len(psn_nos)
            for psn_no, fut in mine:
                fut.set_result(None)
                if self._tails.get(psn_no) is fut:
                    del self._tails[psn_no]

    async def dead_letter(self, raw: bytes, source: str, code: str, message: str,
                          transport: str = "", *, keep: bytes | None = None) -> list[Outbound]:
        """`Handler.dead_letter`, counted in the metrics like every other result."""
        results = await self.handler.dead_letter(raw, source, code, message, keep=keep)
        if self.metrics is not None:
            self.metrics.observe(transport or "other", results, 0.0)
        return results
