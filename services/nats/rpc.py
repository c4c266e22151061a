"""NATS request/reply: the window's one-stop settlement on ``ledger.rpc.<msg_type>`` (integration.md §3).

One queue-group subscription (``ledger-adjudicator``) shared by every
adjudicator replica; each request is decided through `Adjudicator.submit` and
answered with its result (an identity or year-close result carries its
adjustments whole, integration.md §2). A request that could not be decided gets an
``unavailable`` error body with header ``Ledger-Error`` (nothing was stored;
sending it again is safe — a decided key answers ``duplicate``).

Bounded (services/nats/fast.py takes requests straight from the client's read loop, past
nats-py's pending limits): at most ``max_inflight`` requests are being decided
or answered; one more is answered ``unavailable`` ("overloaded") at once
instead of becoming a task, through a queue of at most ``max_shed`` replies
that one task sends. Past that too the request is dropped and its caller
times out. The read loop thus only ever does constant work per request, so it
keeps up with the socket and the server never cuts us as a slow consumer.
"""
from __future__ import annotations

import asyncio
import collections
from typing import Any

import structlog

from events.results import encode_result
from events.subjects import RPC_QUEUE, RPC_SUBJECT
from services.adjudicator.service import Adjudicator, redact
from services.nats.fast import drain_then_wait, headers_bytes, send, subscribe_direct
from services.nats.oversize import decide
from services.nats.results import ERROR_HEADER, ResultPublisher, unavailable

log = structlog.get_logger(component="ledger.rpc")

_UNAVAILABLE_HEADERS = headers_bytes({ERROR_HEADER: "unavailable"})


class RpcServer:
    def __init__(self, nc: Any, adjudicator: Adjudicator, publisher: ResultPublisher, *,
                 max_inflight: int = 1024, max_shed: int = 8192, subject: str = RPC_SUBJECT,
                 queue: str = RPC_QUEUE, metrics: Any = None, group_commit: Any = None):
        self.nc = nc
        self.adjudicator = adjudicator
        self.publisher = publisher
        self.subject = subject
        self.queue = queue
        self.max_inflight, self.max_shed = max_inflight, max_shed
        self.metrics = metrics
        self.inflight = 0
        self.shed = self.dropped = 0
        self._overloaded = unavailable(f"overloaded: {max_inflight} requests in flight; send again later")
        self._shedding: collections.deque[str] = collections.deque()
        self._shed_ready = asyncio.Event()
        self._shedder: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._sub: Any = None
        # services/adjudicator/group_commit.py: under load, batches answered after their one ack (ADR 0016)
        self.group = group_commit.build(adjudicator, self._answer, self._serve, "rpc") if group_commit else None

    async def start(self) -> None:
        if self.group is not None:
            self.group.start()
        if self.metrics is not None:
            self.metrics.rpc_inflight.set_function(lambda: self.inflight)
        self._shedder = asyncio.create_task(self._send_shed())
        # Each request is dispatched from the client's read loop straight into a task (services/nats/fast.py).
        self._sub = await subscribe_direct(self.nc, self.subject, self._on_msg, queue=self.queue)

    def _on_msg(self, msg: Any) -> None:
        if self.inflight >= self.max_inflight:
            self._refuse(msg.reply)
            return
        self.inflight += 1
        if self.group is not None:
            self.group.put(msg, msg.data, f"nats:{msg.subject}")
            return
        task = asyncio.create_task(self._serve(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _refuse(self, reply: str) -> None:
        if self.metrics is not None:
            self.metrics.rpc_shed.inc()
        if not reply or len(self._shedding) >= self.max_shed:
            self.dropped += 1
            return
        self.shed += 1
        self._shedding.append(reply)
        self._shed_ready.set()

    async def _send_shed(self) -> None:
        while True:
            await self._shed_ready.wait()
            self._shed_ready.clear()
            while self._shedding:
                reply = self._shedding.popleft()
                try:
                    await send(self.nc, reply, self._overloaded, _UNAVAILABLE_HEADERS)
                except Exception as exc:           # disconnected: the callers time out instead
                    log.warning("rpc_shed_failed", error=repr(exc))
                    self._shedding.clear()

    async def _serve(self, msg: Any) -> None:
        try:
            results = await decide(self.adjudicator, msg.data, f"nats:{msg.subject}", "rpc")
        except Exception as exc:
            log.error("rpc_failed", subject=msg.subject, error=redact(repr(exc), msg.data))
            try:
                if msg.reply:
                    why = redact(f"not decided, send again: {exc!r}", msg.data)
                    await send(self.nc, msg.reply, unavailable(why), _UNAVAILABLE_HEADERS)
            except Exception as again:             # disconnected: the caller times out instead
                log.error("rpc_reply_failed", subject=msg.subject, error=redact(repr(again), msg.data))
            finally:
                self.inflight -= 1
            return
        except BaseException:
            self.inflight -= 1
            raise
        await self._answer(msg, results)

    async def _answer(self, msg: Any, results: list) -> None:
        """A request decided and stored (one by one, or in a batch once it is acknowledged): its answer, then
        its adjustments."""
        try:
            if msg.reply:
                await send(self.nc, msg.reply, encode_result(results[0]))
            await self.publisher.publish_extra(results)
        except Exception as exc:                   # decided and stored; only the answer could not go out
            log.error("rpc_reply_failed", subject=msg.subject, error=redact(repr(exc), msg.data))
        finally:
            self.inflight -= 1

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking requests, answer those already taken."""
        sub, self._sub = self._sub, None
        await drain_then_wait(sub, set(), timeout)
        if self.group is not None:
            await self.group.stop(timeout)
        await drain_then_wait(None, self._tasks, timeout)
        if self._shedder is not None:
            self._shedder.cancel()
