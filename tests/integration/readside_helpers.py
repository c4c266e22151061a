"""Shared by the read-side integration tests: decided sample traffic, publishing it, reading tables back."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import nats
import pytest

from projections.catalog import PROJECTIONS
from projections.db import migrated_pool
from projections.decode import decode_message
from projections.model import MemoryTables
from projections.runner import Projector
from projections.sample import stored_commit
from services.nats.streams import ensure_ledger_stream

SECRET = b"read-side-integration-secret-0001"
SEAL_KEY = b"read-side-integration-seal-key-01"


async def publish(js: Any, store: Any, start: int = 0, stop: int | None = None) -> int:
    """Publish store.commits[start:stop] to their subjects, sealed; returns the last stream sequence."""
    acks = [await js.publish_async(*stored_commit(p, c, SECRET, SEAL_KEY)) for p, c in store.commits[start:stop]]
    done = await asyncio.gather(*acks)
    return done[-1].seq if done else 0


def expected_tables(store: Any, names: list[str] | None = None) -> dict[str, dict]:
    """The read models as the pure folds give them for the store's commits (sequence = position)."""
    return expected_from_stored([stored_commit(p, c, SECRET, SEAL_KEY) for p, c in store.commits], names)


def expected_from_stored(stored: list[tuple[str, bytes]], names: list[str] | None = None) -> dict[str, dict]:
    """The same for (subject, sealed stored bytes) pairs, published in that order."""
    model = MemoryTables()
    msgs = [decode_message(i, subject, data, SEAL_KEY) for i, (subject, data) in enumerate(stored, 1)]
    for name in names or list(PROJECTIONS):
        projection = PROJECTIONS[name]
        state = projection.new_state()
        for msg in msgs:
            model.apply(projection.fold(state, msg))
    return {t: _norm_rows(rows.values()) for t, rows in model.tables.items()}


def table_names(names: list[str] | None = None) -> list[str]:
    return [t.name for n in names or list(PROJECTIONS) for t in PROJECTIONS[n].tables]


async def read_tables(pool: Any, names: list[str] | None = None, schema: str = "public") -> dict[str, dict]:
    out = {}
    async with pool.acquire() as conn:
        for table in table_names(names):
            rows = await conn.fetch(f'SELECT * FROM "{schema}"."{table}"')
            if rows:
                out[table] = _norm_rows(dict(r) for r in rows)
    return out


def _norm(value: Any) -> Any:
    if isinstance(value, Decimal):
        return value.normalize() if value else Decimal(0)
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc)
    if isinstance(value, (bytes, str)) and value[:1] in (b"{", "{"):
        return json.loads(value)
    return value


def _norm_rows(rows) -> dict:
    out = {}
    for row in rows:
        clean = {k: _norm(v) for k, v in row.items()}
        out[json.dumps(sorted((k, str(v)) for k, v in clean.items() if k in _KEYS))] = clean
    return out


_KEYS = {"seq", "idx", "setl_id", "person_key", "year", "rule_id", "admdvs", "fund", "month", "event_id"}


async def project_until(dsn: str, pool: Any, js: Any, last: int, names: list[str] | None = None,
                        timeout: float = 60, **kwargs) -> Projector:
    """Run a projector until every checkpoint reaches `last`."""
    stop = asyncio.Event()
    done = await checkpoints(pool)
    if done and min(done.values()) >= last:
        stop.set()
    kwargs.setdefault("seal_key", SEAL_KEY)
    projector = Projector(dsn, pool, js, names, on_batch=lambda seq: stop.set() if seq >= last else None, **kwargs)
    await asyncio.wait_for(projector.run(stop), timeout)
    return projector


async def checkpoints(pool: Any) -> dict[str, int]:
    rows = await pool.fetch("SELECT projection, seq FROM projection_checkpoint")
    return {r["projection"]: r["seq"] for r in rows}


class Env:
    def __init__(self, nc: Any, js: Any, pool: Any, dsn: str, nats_url: str):
        self.nc, self.js, self.pool, self.dsn, self.nats_url = nc, js, pool, dsn, nats_url


@pytest.fixture
async def env(fresh_nats_url: str, fresh_database_url: str):
    """An empty LEDGER stream on a private nats-server and a migrated database of its own."""
    nc = await nats.connect(fresh_nats_url)
    js = nc.jetstream()
    await ensure_ledger_stream(js)
    pool = await migrated_pool(fresh_database_url, max_size=4)
    yield Env(nc, js, pool, fresh_database_url, fresh_nats_url)
    await pool.close()
    await nc.close()
