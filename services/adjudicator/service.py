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
import time
from collections import deque
from typing import Any

import msgspec
import structlog

from events.results import Outbound, Reason
from services.adjudicator.handler import Handler
from services.policy.decision import Context

log = structlog.get_logger(component="ledger.adjudicator")

BARRIER_TYPES = frozenset({"medins", "year_close"})


class _Peek(msgspec.Struct):
    msg_type: Any = None
    psn_no: Any = None


_PEEK = msgspec.json.Decoder(_Peek)
_ANY = msgspec.json.Decoder()


def peek(raw: bytes) -> tuple[str | None, str | None]:
    """(msg_type, psn_no) if the bytes are a JSON object carrying them as strings; else Nones."""
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

    async def dead_letter(self, raw: bytes, source: str, code: str, message: str,
                          transport: str = "", *, keep: bytes | None = None) -> list[Outbound]:
        """Record a message that cannot be decided (e.g. `poison_message`) and give its rejected result.

        ``keep``: the bytes to store instead of ``raw`` when ``raw`` itself cannot be stored
        (``message_too_large``); the result's key fields still come from the whole message.
        """
        msg_type, fields = _fields_of(raw)
        handler = self.handler
        ctx = Context(now=handler.clock(), correlation_id=handler.new_id())
        decision = handler.engine.reject(Reason(code, message), msg_type, fields, ctx,
                                         raw if keep is None else keep, source)
        await handler.store.append(decision, None)
        if self.metrics is not None:
            self.metrics.observe(transport or "other", decision.results, 0.0)
        return decision.results


_KEY_FIELDS = ("setl_id", "psn_no", "year", "grant_id", "fixmedins_code", "status", "action", "admdvs")


def _fields_of(raw: bytes) -> tuple[str | None, dict]:
    try:
        obj = _ANY.decode(raw)
    except msgspec.DecodeError:
        return None, {}
    if not isinstance(obj, dict):
        return None, {}
    msg_type = obj.get("msg_type") if isinstance(obj.get("msg_type"), str) else None
    fields = {k: obj[k] for k in _KEY_FIELDS
              if isinstance(obj.get(k), (str, int)) and not isinstance(obj.get(k), bool)}
    return msg_type, fields
