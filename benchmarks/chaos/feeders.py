"""Concurrent feeders on the three transports, each retrying until its message has a definitive answer.

As a real platform would: an ``unavailable`` answer, a timeout, a refused
connection or a lost feed result means "send the same message again" (with a
growing pause, at most ``give_up`` seconds a message, and once ``stop_after``
messages were given up, no more retries at all: a ledger that refuses on
purpose, e.g. after a loss, is not hammered for the rest of the run); ``settled``,
``duplicate`` and ``rejected`` are definitive. Every definitive answer seen is
kept (`Answers`), also late ones (a feed result of an earlier copy, a reply that
came after a retry was sent), since the checks count all of them.

* RPC: request ``ledger.rpc.settlement`` as NATS user ``platform``.
* Feed: JetStream publish on ``platform.in.settlement`` (PubAck) with a
  ``Nats-Msg-Id`` per try, results read from ``ledger.out.settlement_result``;
  no result within ``feed_wait`` → publish again (the ledger answers that copy
  ``duplicate`` if the first was decided).
* HTTP: ``POST /v1/messages`` with the platform token.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats

from benchmarks.chaos.stack import TOKEN, Stack
from benchmarks.chaos.workload import Item

DEFINITIVE = ("settled", "duplicate", "rejected", "recorded")   # recorded: set-up messages


@dataclass
class Answers:
    """What the feeders saw: every definitive answer per ``setl_id``, and how often they had to retry."""
    by_setl: dict[str, list[tuple[str, dict]]] = field(default_factory=dict)    # setl_id → [(transport, body)]
    retries: Counter = field(default_factory=Counter)                          # (transport, why) → count
    gave_up: list[str] = field(default_factory=list)
    sent: Counter = field(default_factory=Counter)                             # transport → tries

    def add(self, transport: str, body: dict) -> None:
        self.by_setl.setdefault(body.get("setl_id") or "?", []).append((transport, body))


def _definitive(body: Any) -> bool:
    return isinstance(body, dict) and body.get("result") in DEFINITIVE


class Feeders:
    def __init__(self, stack: Stack, answers: Answers, *, rpc_concurrency: int = 24, http_concurrency: int = 12,
                 feed_window: int = 256, rpc_timeout: float = 5.0, http_timeout: float = 12.0,
                 feed_wait: float = 25.0, give_up: float = 60.0, stop_after: int = 20):
        self.stack, self.answers = stack, answers
        self.concurrency = {"rpc": rpc_concurrency, "http": http_concurrency, "feed": feed_window}
        self.rpc_timeout, self.http_timeout, self.feed_wait = rpc_timeout, http_timeout, feed_wait
        self.give_up = give_up
        self.stop_after = stop_after      # messages given up before the platform stops retrying at all
        self.nc: Any = None
        self.http: httpx.AsyncClient | None = None
        self._waiting: dict[str, asyncio.Future] = {}
        self.done = 0
        self.progress = asyncio.Event()

    async def __aenter__(self) -> Feeders:
        async def on_error(exc: Exception) -> None:      # counted, not printed: the faults cause them
            self.answers.retries["nats", type(exc).__name__] += 1

        async def on_disconnect() -> None:
            self.answers.retries["nats", "disconnected"] += 1

        self.nc = await nats.connect(servers=self.stack.urls_for("platform").split(","), name="chaos-platform",
                                     max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=3,
                                     ping_interval=2, max_outstanding_pings=3, pending_size=256 * 1024 * 1024,
                                     error_cb=on_error, disconnected_cb=on_disconnect)
        self.js = self.nc.jetstream(timeout=5.0)
        await self.nc.subscribe("ledger.out.settlement_result", cb=self._on_result, pending_msgs_limit=-1,
                                pending_bytes_limit=-1)
        self.http = httpx.AsyncClient(base_url=self.stack.http_base, timeout=self.http_timeout,
                                      headers={"Authorization": f"Bearer {TOKEN}"},
                                      limits=httpx.Limits(max_connections=64))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.http is not None:
            await self.http.aclose()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()

    async def _on_result(self, msg: Any) -> None:
        try:
            body = json.loads(msg.data)
        except ValueError:
            self.answers.retries["feed", "unreadable result"] += 1
            return
        if not _definitive(body):
            return
        self.answers.add("feed", body)
        waiter = self._waiting.get(body.get("setl_id"))
        if waiter is not None and not waiter.done():
            waiter.set_result(body)

    # --- one try per transport: a definitive body, or None (send again) --------------------

    async def _rpc(self, item: Item, tries: int) -> dict | None:
        try:
            reply = await self.nc.request(item.subject("ledger.rpc"), item.body, timeout=self.rpc_timeout)
        except Exception as exc:                      # timeout, no responders, reconnecting
            self.answers.retries["rpc", type(exc).__name__] += 1
            return None
        return self._judge("rpc", reply.data, item)

    async def _http(self, item: Item, tries: int) -> dict | None:
        assert self.http is not None
        try:
            reply = await self.http.post("/v1/messages", content=item.body)
        except httpx.HTTPError as exc:
            self.answers.retries["http", type(exc).__name__] += 1
            return None
        if reply.status_code == 503:
            self.answers.retries["http", "503 unavailable"] += 1
            return None
        return self._judge("http", reply.content, item)

    async def _feed(self, item: Item, tries: int) -> dict | None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[item.key] = waiter
        try:
            try:
                await self.js.publish(item.subject("platform.in"), item.body,
                                      headers={"Nats-Msg-Id": f"{item.key}.{tries}"})
            except Exception as exc:
                self.answers.retries["feed", f"publish {type(exc).__name__}"] += 1
                return None
            try:
                return await asyncio.wait_for(asyncio.shield(waiter), self.feed_wait)
            except TimeoutError:
                self.answers.retries["feed", "no result"] += 1
                return None
        finally:
            if self._waiting.get(item.key) is waiter:
                del self._waiting[item.key]

    def _judge(self, transport: str, data: bytes, item: Item) -> dict | None:
        try:
            body = json.loads(data)
        except ValueError:
            body = {"result": "unreadable", "raw": data[:200].decode(errors="replace")}
        if isinstance(body, dict) and (body.get("reason") or {}).get("code") == "unavailable":
            self.answers.retries[transport, "unavailable"] += 1
            return None
        if not _definitive(body):                     # e.g. a 400: definitive, and wrong; the checks say so
            body = {"setl_id": item.key, "result": f"unexpected: {str(body)[:200]}"}
        if item.key and transport != "feed":
            self.answers.add(transport, body)
        return body

    # --- until definitive --------------------------------------------------------------------

    async def deliver(self, item: Item) -> dict | None:
        send: Callable = {"rpc": self._rpc, "http": self._http, "feed": self._feed}[item.transport]
        started, pause, tries = time.monotonic(), 0.1, 0
        while True:
            tries += 1
            self.answers.sent[item.transport] += 1
            body = await send(item, tries)
            if body is not None:
                return body
            if time.monotonic() - started > self.give_up or len(self.answers.gave_up) >= self.stop_after:
                self.answers.gave_up.append(item.key)
                return None
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def run(self, items: list[Item], on_done: Callable[[int], None] | None = None) -> None:
        """Deliver every item, at most ``concurrency[transport]`` at a time per transport, in list order."""
        queues: dict[str, asyncio.Queue] = {t: asyncio.Queue() for t in self.concurrency}
        for item in items:
            queues[item.transport].put_nowait(item)

        async def lane(queue: asyncio.Queue) -> None:
            while not queue.empty():
                item = queue.get_nowait()
                await self.deliver(item)
                self.done += 1
                if on_done is not None:
                    on_done(self.done)

        await asyncio.gather(*(lane(queues[t]) for t, n in self.concurrency.items() for _ in range(n)))
