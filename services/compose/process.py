"""One ledger process from its settings: connections, the store on JetStream, the core, the transports.

`ledger run` (services/compose/ledger_run.py), the worker (services/cli/worker.py), the
benchmarks and the integration tests all call `bootstrap()`. Fakes go in through its keyword
arguments (a `MemoryStore`, a clock, an id source, a patched engine), so a test swaps one part and
keeps the rest of the wiring. The decision core itself is built by `services.compose.core`.

``bootstrap`` connects (NATS, PostgreSQL when a URL is given), checks the LEDGER
stream and loads reference data; it does not start taking messages —
`Ledger.start_transports()` does, and `Ledger.close()` undoes everything in
reverse order.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import structlog

from services.adjudicator.handler import utc_now
from services.adjudicator.service import Adjudicator
from services.adjudicator.store import Store
from services.compose.core import build_handler
from services.compose.ledger import Ledger
from services.nats.connect import connect
from services.nats.results import ResultPublisher
from services.observability import Metrics
from services.policy.engine import Engine
from services.policy.pack import PackSet
from services.runtime.options import RuntimeOptions
from services.runtime.secrets import person_key, person_key_secret, seal_secret
from services.runtime.settings import Settings, load_settings

log = structlog.get_logger(component="ledger.bootstrap")


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
    clock = clock or utc_now
    secret = person_key_secret(settings)
    seal_key = seal_secret(settings)

    owns_nc = nc is None
    js = None
    db = None
    guard = None
    try:
        if nc is None and nats_url is not None:
            nc = await connect(nats_url, **settings.nats_auth)
        if nc is not None:
            js = nc.jetstream(timeout=options.publish_timeout)
        if store is None:
            if js is None:
                raise ValueError("bootstrap needs a NATS URL, or a store to use instead of JetStream")
            from services.integrity.guard import IntegrityGuard
            # Before anything is written: a stream that is not the one the ledger was built on is held.
            guard = IntegrityGuard(js, seal_key, metrics=metrics, replicas=settings.stream_replicas,
                                   poll_every=options.integrity_poll)
            store = await _jetstream_store(nc, js, guard, settings, options, packs, clock(), metrics)
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

    handler = build_handler(packs, store, clock=clock, new_id=new_id, engine=engine)
    return Ledger(
        settings=settings, options=options, packs=packs, engine=engine, store=store, handler=handler,
        adjudicator=Adjudicator(handler, metrics), metrics=metrics,
        person_key=lambda psn_no: person_key(secret, psn_no), seal_key=seal_key, guard=guard, nc=nc, js=js, db=db,
        publisher=ResultPublisher(nc) if nc is not None else None, _owns_nc=owns_nc)


async def _jetstream_store(nc: Any, js: Any, guard: Any, settings: Settings, options: RuntimeOptions,
                           packs: PackSet, now: dt.datetime, metrics: Metrics) -> Store:
    """Check the stream, start the guard, record the packs in force, then the store on JetStream."""
    from services.nats.pack_activation import activate_packs
    from services.nats.provision import read_only
    from services.nats.publisher import JetStreamPublisher
    from services.nats.store import JetStreamStore
    from services.nats.streams import ensure_ledger_stream

    # check only: the services may not change it (3 replicas on an R3 cluster, LEDGER_STREAM_REPLICAS)
    await ensure_ledger_stream(read_only(js), replicas=settings.stream_replicas)
    await guard.start()
    seal_key = seal_secret(settings)
    for pack in await activate_packs(js, packs, now, seal_key=seal_key):
        log.info("pack_activated", pack=pack.id, version=pack.version, digest=pack.digest)
    js_publisher = JetStreamPublisher(nc, timeout=options.publish_timeout)
    await js_publisher.start()
    store = JetStreamStore(js, person_key_secret(settings), seal_key=seal_key, cache_size=options.person_cache,
                           timeout=options.publish_timeout, metrics=metrics, publisher=js_publisher, guard=guard)
    await store.start()
    return store
