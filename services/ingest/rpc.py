"""NATS request/reply: the window's one-stop settlement on ``ledger.rpc.<msg_type>`` (integration.md §3).

One queue-group subscription (``ledger-adjudicator``) shared by every
adjudicator replica; each request is decided through `Adjudicator.submit` and
answered with its (first) result. A request that could not be decided gets an
``unavailable`` error body with header ``Ledger-Error`` (nothing was stored;
sending it again is safe — a decided key answers ``duplicate``).
"""
from __future__ import annotations

import asyncio
from typing import Any

import structlog

from events.results import encode_result
from services.adjudicator.service import Adjudicator, redact
from services.ingest.natsfast import drain_then_wait, headers_bytes, send, subscribe_direct
from services.ingest.outbound import ERROR_HEADER, ResultPublisher, unavailable

log = structlog.get_logger(component="ledger.rpc")

RPC_SUBJECT = "ledger.rpc.*"
QUEUE_GROUP = "ledger-adjudicator"


class RpcServer:
    def __init__(self, nc: Any, adjudicator: Adjudicator, publisher: ResultPublisher, *,
                 max_inflight: int = 2048, subject: str = RPC_SUBJECT, queue: str = QUEUE_GROUP):
        self.nc = nc
        self.adjudicator = adjudicator
        self.publisher = publisher
        self.subject = subject
        self.queue = queue
        self._slots = asyncio.Semaphore(max_inflight)
        self._tasks: set[asyncio.Task] = set()
        self._sub: Any = None

    async def start(self) -> None:
        # Each request is dispatched from the client's read loop straight into a task (natsfast).
        self._sub = await subscribe_direct(self.nc, self.subject, self._on_msg, queue=self.queue)

    def _on_msg(self, msg: Any) -> None:
        task = asyncio.create_task(self._serve(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, msg: Any) -> None:
        async with self._slots:              # at most max_inflight decisions; later requests wait their turn
            try:
                results = await self.adjudicator.submit(msg.data, f"nats:{msg.subject}", "rpc")
            except Exception as exc:
                log.error("rpc_failed", subject=msg.subject, error=redact(repr(exc), msg.data))
                if msg.reply:
                    await send(self.nc, msg.reply, unavailable(redact(f"not decided, send again: {exc!r}", msg.data)),
                               headers_bytes({ERROR_HEADER: "unavailable"}))
                return
            if msg.reply:
                await send(self.nc, msg.reply, encode_result(results[0]))
            await self.publisher.publish_extra(results)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking requests, answer those already taken."""
        sub, self._sub = self._sub, None
        await drain_then_wait(sub, self._tasks, timeout)
