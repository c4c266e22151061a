"""The one place the running ledger is wired: settings → packs, engine, store, handler, transports.

`ledger run` (services/cli/run.py), the adjudicator worker
(services/adjudicator/worker.py), the benchmarks and the integration tests all
call `bootstrap()`; nothing else constructs these parts. Fakes go in through
its keyword arguments (a `MemoryStore`, a clock, an id source, a patched
engine), so a test swaps one part and keeps the rest of the wiring.

``bootstrap`` connects (NATS, PostgreSQL when a URL is given), checks the LEDGER
stream and loads reference data; it does not start taking messages —
`Ledger.start_transports()` does, and `Ledger.close()` undoes everything in
reverse order.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import gc
import itertools
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from services.adjudicator.group_commit import GroupCommitConfig
from services.adjudicator.handler import Handler, utc_now
from services.adjudicator.service import Adjudicator
from services.adjudicator.store import Store
from services.ingest.feed import FeedConfig, FeedConsumer
from services.ingest.outbound import ResultPublisher
from services.ingest.rpc import RpcServer
from services.observability import Metrics
from services.pauses import watch_gc, watch_loop_lag
from services.policy.engine import Engine
from services.policy.pack import DEFAULT_PACK_DIR, PackSet
from services.runtime.secrets import person_key, person_key_secret, seal_secret
from services.runtime.settings import Settings, load_settings

log = structlog.get_logger(component="ledger.bootstrap")


@dataclass(frozen=True)
class RuntimeOptions:
    """Tuning the runtime reads from the environment besides `Settings` (all optional)."""
    pack_dir: Path = DEFAULT_PACK_DIR          # LEDGER_PACK_DIR
    person_cache: int = 100_000                # LEDGER_PERSON_CACHE: persons kept in memory per process
    gc_freeze_interval: float = 0.25           # LEDGER_GC_FREEZE_INTERVAL: seconds; 0 leaves the GC alone
    publish_timeout: float = 5.0               # LEDGER_PUBLISH_TIMEOUT: seconds to wait for a JetStream ack
    rpc_max_inflight: int = 1024               # LEDGER_RPC_MAX_INFLIGHT: requests decided at once; more are shed
    restart_delay: float = 0.1                 # LEDGER_RESTART_DELAY: seconds before restarting a dead embedded
                                               # server (doubles per failed try, at most 10 s)
    integrity_poll: float = 2.0                # LEDGER_INTEGRITY_POLL: seconds between the guard's checks (ADR 0010)
    feed: FeedConfig = field(default_factory=FeedConfig)
    group_commit: GroupCommitConfig = field(default_factory=GroupCommitConfig)   # LEDGER_GROUP_COMMIT*, ADR 0016

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RuntimeOptions:
        pack_dir = (env.get("LEDGER_PACK_DIR") or "").strip()
        cache = (env.get("LEDGER_PERSON_CACHE") or "").strip()
        timeout = (env.get("LEDGER_PUBLISH_TIMEOUT") or "").strip()
        freeze = (env.get("LEDGER_GC_FREEZE_INTERVAL") or "").strip()
        restart = (env.get("LEDGER_RESTART_DELAY") or "").strip()
        rpc_inflight = (env.get("LEDGER_RPC_MAX_INFLIGHT") or "").strip()
        poll = (env.get("LEDGER_INTEGRITY_POLL") or "").strip()
        try:
            rpc_max_inflight = int(rpc_inflight) if rpc_inflight else cls.rpc_max_inflight
            person_cache = int(cache) if cache else cls.person_cache
            publish_timeout = float(timeout) if timeout else cls.publish_timeout
            gc_freeze_interval = float(freeze) if freeze else cls.gc_freeze_interval
            restart_delay = float(restart) if restart else cls.restart_delay
            integrity_poll = float(poll) if poll else cls.integrity_poll
        except ValueError:
            raise ValueError("LEDGER_PERSON_CACHE and LEDGER_RPC_MAX_INFLIGHT must be integers, LEDGER_PUBLISH_TIMEOUT, "
                             "LEDGER_GC_FREEZE_INTERVAL, LEDGER_RESTART_DELAY and LEDGER_INTEGRITY_POLL numbers") from None
        if (min(person_cache, rpc_max_inflight) < 1 or min(publish_timeout, restart_delay, integrity_poll) <= 0
                or gc_freeze_interval < 0):
            raise ValueError("LEDGER_PERSON_CACHE, LEDGER_RPC_MAX_INFLIGHT, LEDGER_PUBLISH_TIMEOUT, "
                             "LEDGER_RESTART_DELAY and LEDGER_INTEGRITY_POLL must be positive")
        return cls(pack_dir=Path(pack_dir).expanduser() if pack_dir else DEFAULT_PACK_DIR,
                   person_cache=person_cache, publish_timeout=publish_timeout,
                   gc_freeze_interval=gc_freeze_interval, restart_delay=restart_delay,
                   rpc_max_inflight=rpc_max_inflight, integrity_poll=integrity_poll,
                   feed=FeedConfig.from_env(env), group_commit=GroupCommitConfig.from_env(env))


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


def correlation_ids() -> Callable[[], str]:
    """Unique ids for inbound messages: 64 random bits per process, then a counter (cheaper than uuid4)."""
    prefix = secrets.token_hex(8)
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):012x}"


PING_INTERVAL = 2.0     # seconds: a paused or partitioned server is noticed in ~6 s, not nats-py's 4 min (ADR 0012)


async def connect_nats(url: str, name: str = "claims-ledger", **auth: Any) -> Any:
    """Connect with reconnects; ``auth`` adds nats-py credentials beside those in the URL (``nkeys_seed``)."""
    import nats

    async def on_error(exc: Exception) -> None:
        log.warning("nats_error", error=repr(exc))

    async def on_disconnect() -> None:
        log.info("nats_disconnected")

    async def on_reconnect() -> None:
        log.info("nats_reconnected")

    # Ping every 2 s, stale after 2 unanswered: a server that is paused (SIGSTOP, a VM freeze) keeps
    # its socket open, and with nats-py's default (120 s) the ledger would wait on it for minutes
    # instead of moving to another node of the cluster.
    return await nats.connect(
        servers=[u.strip() for u in url.split(",")], name=name, max_reconnect_attempts=-1,
        reconnect_time_wait=1, connect_timeout=5, pending_size=64 * 1024 * 1024,
        ping_interval=PING_INTERVAL, max_outstanding_pings=2,
        error_cb=on_error, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect, **auth)


async def bootstrap(settings: Settings | None = None, *, nats_url: str | None = None,
                    database_url: str | None = None, options: RuntimeOptions | None = None,
                    packs: PackSet | None = None, engine: Engine | None = None, store: Store | None = None,
                    clock: Callable[[], dt.datetime] | None = None, new_id: Callable[[], str] | None = None,
                    metrics: Metrics | None = None, nc: Any = None, connect_db: bool = True) -> Ledger:
    """Build one ledger process. URLs default to the settings' (``None``: no NATS / no PostgreSQL).

    With ``store`` given (e.g. a `MemoryStore`) no stream is touched; NATS is
    still connected if a URL is given, for the transports. ``connect_db=False``
    skips PostgreSQL (the adjudicator worker needs none).
    """
    settings = settings or load_settings()
    options = options or RuntimeOptions.from_env()
    nats_url = nats_url or settings.nats_url
    database_url = (database_url or settings.database_url) if connect_db else None
    metrics = metrics or Metrics()
    packs = packs or PackSet.from_dir(options.pack_dir)
    engine = engine or Engine(packs)
    secret = person_key_secret(settings)
    seal_key = seal_secret(settings)

    owns_nc = nc is None
    js = None
    db = None
    guard = None
    try:
        if nc is None and nats_url is not None:
            nc = await connect_nats(nats_url, **settings.nats_auth)
        if nc is not None:
            js = nc.jetstream(timeout=options.publish_timeout)
        if store is None:
            if js is None:
                raise ValueError("bootstrap needs a NATS URL, or a store to use instead of JetStream")
            from services.adjudicator.jetstream_store import JetStreamStore
            from services.ingest.natsfast import JetStreamPublisher
            from services.integrity.guard import IntegrityGuard
            from services.runtime.provision import read_only
            from services.runtime.stream import ensure_ledger_stream

            from services.adjudicator.pack_activation import activate_packs

            # check only: the services may not change it (3 replicas on an R3 cluster, LEDGER_STREAM_REPLICAS)
            await ensure_ledger_stream(read_only(js), replicas=settings.stream_replicas)
            # Before anything is written: a stream that is not the one the ledger was built on is held.
            guard = IntegrityGuard(js, seal_key, metrics=metrics, replicas=settings.stream_replicas,
                                   poll_every=options.integrity_poll)
            await guard.start()
            for pack in await activate_packs(js, packs, (clock or utc_now)(), seal_key=seal_key):
                log.info("pack_activated", pack=pack.id, version=pack.version, digest=pack.digest)
            js_publisher = JetStreamPublisher(nc, timeout=options.publish_timeout)
            await js_publisher.start()
            jss = JetStreamStore(js, secret, seal_key=seal_key, cache_size=options.person_cache,
                                 timeout=options.publish_timeout, metrics=metrics, publisher=js_publisher,
                                 guard=guard)
            await jss.start()
            store = jss
        if database_url is not None:
            import asyncpg

            db = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
    except BaseException:
        if guard is not None:
            await guard.close()
        if db is not None:
            await db.close()
        if nc is not None and owns_nc:
            await nc.close()
        raise

    handler = Handler(engine, store, clock=clock or utc_now, new_id=new_id or correlation_ids())
    return Ledger(
        settings=settings, options=options, packs=packs, engine=engine, store=store, handler=handler,
        adjudicator=Adjudicator(handler, metrics), metrics=metrics,
        person_key=lambda psn_no: person_key(secret, psn_no), seal_key=seal_key, guard=guard, nc=nc, js=js, db=db,
        publisher=ResultPublisher(nc) if nc is not None else None, _owns_nc=owns_nc)
