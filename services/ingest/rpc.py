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
from services.adjudicator.service import Adjudicator
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
        # Generous pending limits: a burst waits in the client rather than being cut off as a slow consumer.
        self._sub = await self.nc.subscribe(self.subject, queue=self.queue, cb=self._on_msg,
                                            pending_msgs_limit=200_000, pending_bytes_limit=512 * 1024 * 1024)

    async def _on_msg(self, msg: Any) -> None:
        await self._slots.acquire()          # back-pressure: the subscription waits, the server buffers
        task = asyncio.create_task(self._serve(msg))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _serve(self, msg: Any) -> None:
        try:
            results = await self.adjudicator.submit(msg.data, f"nats:{msg.subject}", "rpc")
        except Exception as exc:
            log.error("rpc_failed", subject=msg.subject, error=repr(exc))
            if msg.reply:
                await self.nc.publish(msg.reply, unavailable(f"not decided, send again: {exc!r}"),
                                      headers={ERROR_HEADER: "unavailable"})
            return
        if msg.reply:
            await self.nc.publish(msg.reply, encode_result(results[0]))
        await self.publisher.publish_extra(results)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking requests, answer those already taken."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            try:
                await sub.drain()
            except Exception:
                pass
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
