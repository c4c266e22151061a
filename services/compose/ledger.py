"""One running ledger process: its parts, taking messages or not, and closing in reverse order.

Built by `services.compose.process.bootstrap`; `start_transports` starts taking messages
(``ledger.rpc.*`` and the ``platform.in.>`` feed), `close` undoes everything.
"""
from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.adjudicator.handler import Handler
from services.adjudicator.service import Adjudicator
from services.adjudicator.store import Store
from services.nats.feed import FeedConsumer
from services.nats.results import ResultPublisher
from services.nats.rpc import RpcServer
from services.observability import Metrics
from services.pauses import watch_gc, watch_loop_lag
from services.policy.engine import Engine
from services.policy.pack import PackSet
from services.runtime.options import RuntimeOptions
from services.runtime.settings import Settings


@dataclass
class Ledger:
    """Everything one ledger process runs; built by `bootstrap`."""
    settings: Settings
    options: RuntimeOptions
    packs: PackSet
    engine: Engine
    store: Store
    handler: Handler
    adjudicator: Adjudicator
    metrics: Metrics
    person_key: Callable[[str], str]
    seal_key: bytes = b""             # the key every commit is sealed with (ADR 0010)
    guard: Any = None                 # services.integrity.guard.IntegrityGuard, with the JetStream store
    nc: Any = None                    # nats.aio.client.Client, None without NATS (tests with fakes)
    js: Any = None
    db: Any = None                    # asyncpg.Pool, None without DATABASE_URL
    publisher: ResultPublisher | None = None
    rpc: RpcServer | None = None
    feed: FeedConsumer | None = None
    taking_messages: bool = False
    _owns_nc: bool = True
    _gc_task: asyncio.Task | None = None
    _watchers: list = field(default_factory=list)      # what stops the pause watchers (services/pauses.py)

    async def publish_extra(self, results: list) -> None:
        if self.publisher is not None:
            await self.publisher.publish_extra(results)

    async def start_transports(self, *, rpc: bool = True, feed: bool = True) -> None:
        """Subscribe to ``ledger.rpc.*`` and start pulling ``platform.in.>``."""
        if self.nc is None:
            raise RuntimeError("transports need NATS")
        assert self.publisher is not None
        self.metrics.inflight.set_function(lambda: self.adjudicator.inflight)
        if rpc:
            self.rpc = RpcServer(self.nc, self.adjudicator, self.publisher,
                                 max_inflight=self.options.rpc_max_inflight, metrics=self.metrics,
                                 group_commit=self.options.group_commit)
            await self.rpc.start()
        if feed:
            self.feed = FeedConsumer(self.js, self.adjudicator, self.publisher, self.options.feed, self.metrics,
                                     group_commit=self.options.group_commit)
            await self.feed.start()
        if self.options.gc_freeze_interval and self._gc_task is None:
            self._gc_task = asyncio.create_task(_freeze_periodically(self.options.gc_freeze_interval))
        if not self._watchers:
            lag = asyncio.create_task(watch_loop_lag(self.metrics))
            self._watchers = [watch_gc(self.metrics), lag.cancel]
        self.taking_messages = True

    async def stop_transports(self) -> None:
        """Stop taking messages; finish and answer those already taken."""
        self.taking_messages = False
        if self._gc_task is not None:
            self._gc_task.cancel()
            self._gc_task = None
        for stop in self._watchers:
            stop()
        self._watchers = []
        if self.rpc is not None:
            await self.rpc.stop()
        if self.feed is not None:
            await self.feed.stop()

    async def close(self) -> None:
        await self.stop_transports()
        if self.guard is not None:
            await self.guard.close()
        close_store = getattr(self.store, "close", None)
        if close_store is not None:
            await close_store()
        publisher = getattr(self.store, "publisher", None)
        if publisher is not None:
            await publisher.close()
        if self.db is not None:
            await self.db.close()
            self.db = None
        if self.nc is not None and self._owns_nc and not self.nc.is_closed:
            try:
                await self.nc.drain()
            except Exception:
                await self.nc.close()


async def _freeze_periodically(interval: float) -> None:
    """Keep the person cache out of the cyclic GC's full collections.

    The cache holds millions of long-lived, acyclic objects (refcounting frees
    them on eviction); a full collection walks all of them and stalls every
    decision for hundreds of milliseconds (bench_nats p99). Collecting the young
    generations and then freezing what survived moves it to the permanent
    generation, which collections skip. Cyclic garbage that survives into the
    old generation between freezes is not reclaimed — a small, bounded price.

    Often, because frozen objects stop counting toward the old generation's size
    and CPython collects it fully once what entered it since is a quarter of that
    size: with a freeze every 10 s the feed spent ~160 µs of CPU a settlement,
    every 0.25 s ~115 µs, the same as with the GC off (bench_nats, 100,000
    settlements; the worker's peak RSS unchanged at ~420 MB).
    """
    while True:
        gc.collect(1)
        gc.freeze()
        await asyncio.sleep(interval)
