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
from services.runtime.options import YOUNG_THRESHOLD, RuntimeOptions
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
        settle_gc(self.options.gc_young)
        if not self._watchers:
            lag = asyncio.create_task(watch_loop_lag(self.metrics))
            self._watchers = [watch_gc(self.metrics), lag.cancel]
        self.taking_messages = True

    async def stop_transports(self) -> None:
        """Stop taking messages; finish and answer those already taken."""
        self.taking_messages = False
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


_gc_settled = False


def settle_gc(young: int = YOUNG_THRESHOLD) -> None:
    """Once per process, when it starts taking messages: collect, freeze what start-up built, and make
    young collections rarer (ADR 0014).

    What start-up built (modules, packs, the engine, settings) lives as long as the process, so
    freezing it once costs nothing and keeps it out of every full collection. Nothing is frozen
    later: the ledger used to freeze every 0.25 s to keep the person cache out of full collections,
    but whatever was alive at a freeze stayed out of the collector's reach for good, cyclic garbage
    included, and the soak (benchmarks/soak.py) measured it: frozen objects +6,600 and RSS
    +2.7 MB per 100,000 settlements, never coming back. A young generation of ``young`` allocations
    instead of 700 collects far less often, so fewer in-flight objects (a decision's) are promoted
    while still alive, and the old generation, whose full collections walk the cache, fills slower.
    """
    global _gc_settled
    if _gc_settled:
        return
    _gc_settled = True
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old)


