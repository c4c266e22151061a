"""Blue/green rebuild: replay from sequence 1 into fresh tables, swap them in when caught up.

Each projection is built in schema `rebuild_<name>` (tables made `LIKE` the
live ones, so migrations stay the one definition) while the live tables keep
serving. Once the build has reached the stream's end, one transaction locks
the live checkpoint rows (same order as the projector), checks the build is
not behind them, moves the live tables to `retired_<name>` and the built ones
to `public`, and sets the checkpoint to the build's sequence with a new
generation. A live projector blocked on that row then sees the generation
change, drops its state and resumes after the build's sequence: no event is
lost or counted twice across the swap. Readers see old tables or new, never
a mix. A build read from a stream other than the one the read models remember
is never swapped in (ADR 0010).
"""
from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from projections.catalog import Projection, select
from projections.heads import Heads
from projections.ownership import Ownership
from projections.runner import LIVE, check_cancelled, decode_batch, ensure_checkpoints
from projections.source import StreamReader, last_sequence
from projections.sql import write
from events.chain import seal_key_id
from services.integrity.baseline import check_baseline
from services.runtime.stream import STREAM


class RebuildBusy(RuntimeError):
    """Another rebuild of the same projection is running."""


@dataclass
class Progress:
    seq: int = 0
    target: int = 0
    events: int = 0
    started: float = field(default_factory=time.perf_counter)      # perf_counter seconds

    @property
    def rate(self) -> float:       # messages per second, for the progress bar
        elapsed = time.perf_counter() - self.started
        return self.seq / elapsed if elapsed > 0 else 0.0


def build_schema(name: str) -> str:
    return f"rebuild_{name}"


async def _prepare(conn: asyncpg.Connection, p: Projection, target: int) -> None:
    schema = build_schema(p.name)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; DROP SCHEMA IF EXISTS "retired_{p.name}" CASCADE;'
                       f'CREATE SCHEMA "{schema}"')
    for table in p.tables:
        await conn.execute(f'CREATE TABLE "{schema}"."{table.name}" (LIKE {LIVE}."{table.name}" INCLUDING ALL)')
    await conn.execute(
        "INSERT INTO projection_rebuild (projection, schema_name, status, seq, target_seq) "
        "VALUES ($1, $2, 'running', 0, $3) ON CONFLICT (projection) DO UPDATE SET schema_name = EXCLUDED.schema_name, "
        "status = 'running', seq = 0, target_seq = EXCLUDED.target_seq, started_at = now(), updated_at = now(), "
        "finished_at = NULL, error = NULL", p.name, schema, target)


_INDEXES = r"""
    SELECT indexname AS name, regexp_replace(indexdef, '^.* ON \S+ ', '') AS shape
    FROM pg_indexes WHERE schemaname = $1 AND tablename = $2"""


async def _keep_index_names(conn: asyncpg.Connection, retired: str, table: str) -> None:
    """`LIKE ... INCLUDING ALL` names indexes its own way; give them the migrated names back."""
    old = {r["shape"]: r["name"] for r in await conn.fetch(_INDEXES, retired, table)}
    for r in await conn.fetch(_INDEXES, LIVE, table):
        wanted = old.get(r["shape"])
        if wanted and wanted != r["name"]:
            await conn.execute(f'ALTER INDEX {LIVE}."{r["name"]}" RENAME TO "{wanted}"')


async def _swap(conn: asyncpg.Connection, projections: list[Projection], seq: int, created: Any,
                key_id: str, stream: str) -> int | None:
    """Swap every build in; returns None when done, or the live sequence to catch up with first."""
    async with conn.transaction():
        await check_baseline(conn, created, seq, key_id, stream)
        live = {}
        for p in sorted(projections, key=lambda p: p.name):
            live[p.name] = await conn.fetchval(
                "SELECT seq FROM projection_checkpoint WHERE projection = $1 FOR UPDATE", p.name)
        ahead = max(live.values())
        if ahead > seq:
            return ahead
        for p in projections:
            retired, schema = f"retired_{p.name}", build_schema(p.name)
            await conn.execute(f'CREATE SCHEMA "{retired}"')
            for table in p.tables:
                await conn.execute(f'ALTER TABLE {LIVE}."{table.name}" SET SCHEMA "{retired}"')
                await conn.execute(f'ALTER TABLE "{schema}"."{table.name}" SET SCHEMA {LIVE}')
                await _keep_index_names(conn, retired, table.name)
            await conn.execute(f'DROP SCHEMA "{schema}"')
            await conn.execute("UPDATE projection_checkpoint SET seq = $2, generation = generation + 1, "
                               "owner = 'rebuild', updated_at = now() WHERE projection = $1", p.name, seq)
            await conn.execute("UPDATE projection_rebuild SET status = 'swapped', seq = $2, target_seq = $2, "
                               "updated_at = now(), finished_at = now() WHERE projection = $1", p.name, seq)
    for p in projections:
        await conn.execute(f'DROP SCHEMA "retired_{p.name}" CASCADE')
    return None


async def rebuild(dsn: str, pool: asyncpg.Pool, js: Any, names: list[str] | None = None, *, seal_key: bytes,
                  stream: str = STREAM, max_batch: int = 5000,
                  progress: Callable[[Progress], None] | None = None) -> Progress:
    """Rebuild the named projections (all by default) in one pass over the stream and swap them in."""
    projections = select(names)
    lock_conn = await asyncpg.connect(dsn)
    owner = Ownership(lock_conn, [p.name for p in projections], kind="rebuild")
    try:
        if len(await owner.try_acquire()) != len(projections):
            raise RebuildBusy(f"a rebuild of {sorted(set(owner.names) - set(owner.owned))} is already running")
        info = await js.stream_info(stream)
        state = Progress(target=int(info.state.last_seq or 0))
        async with pool.acquire() as conn:
            await ensure_checkpoints(conn, [p.name for p in projections])
            for p in projections:
                await _prepare(conn, p, state.target)
        try:
            await _replay(pool, js, projections, stream, max_batch, state, progress, seal_key, info.created)
        except BaseException as exc:
            async with pool.acquire() as conn:
                await conn.execute("UPDATE projection_rebuild SET status = 'failed', error = $2, updated_at = now() "
                                   "WHERE projection = ANY($1::text[])", [p.name for p in projections],
                                   f"{type(exc).__name__}: {exc}")
            raise
        return state
    finally:
        await owner.release()
        await lock_conn.close()


async def _replay(pool: asyncpg.Pool, js: Any, projections: list[Projection], stream: str, max_batch: int,
                  state: Progress, progress: Callable[[Progress], None] | None, seal_key: bytes,
                  created: Any) -> None:
    """Fold batch N+1 while PostgreSQL stores batch N (one writer, one batch in flight).

    A fold whose bounded state lacks an entry waits for the writer to drain before reading it
    back from the build tables (rare: an old settlement cancelled or adjusted much later).
    """
    states = {p.name: p.new_state() for p in projections}
    heads = Heads(from_start=True)
    names = [p.name for p in projections]
    queue: asyncio.Queue = asyncio.Queue(maxsize=1)

    async def writer() -> None:
        while (item := await queue.get()) is not None:
            last, events, ops = item
            async with pool.acquire() as conn, conn.transaction():
                for p in projections:
                    await write(conn, build_schema(p.name), ops[p.name])
                await conn.execute("UPDATE projection_rebuild SET seq = $2, target_seq = $3, updated_at = now() "
                                   "WHERE projection = ANY($1::text[])", names, last, max(state.target, last))
            state.seq, state.events = last, state.events + events
            state.target = max(state.target, last)
            if progress is not None:
                progress(state)
            queue.task_done()

    task = asyncio.create_task(writer())

    async def drained() -> None:
        done, _ = await asyncio.wait({task, asyncio.ensure_future(queue.join())},
                                     return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()                      # the writer failed: raise its error here

    read = 0
    analyzed = False
    try:
        async with StreamReader(js, 1, stream=stream, max_batch=max_batch) as reader:
            while True:
                check_cancelled()
                if read >= state.target:
                    await drained()
                    state.target = max(state.target, await last_sequence(js, stream))
                    if state.seq >= state.target:
                        async with pool.acquire() as conn:
                            if not analyzed:          # planner statistics before readers meet the new tables
                                for p in projections:
                                    for table in p.tables:
                                        await conn.execute(f'ANALYZE "{build_schema(p.name)}"."{table.name}"')
                                analyzed = True
                            behind = await _swap(conn, projections, state.seq, created, seal_key_id(seal_key),
                                                 stream)
                        if behind is None:
                            return
                        state.target = behind
                raws = await reader.batch(timeout=0.5)
                if not raws:
                    continue
                msgs = decode_batch(raws, seal_key)
                async with pool.acquire() as conn:
                    msgs = await heads.screen(conn, msgs)          # replayed commits: forged, not folded
                for p in projections:                 # a settlement dropped from a bounded index: from SQL,
                    keys = p.missing(states[p.name], msgs) if p.missing else None     # once all is written
                    if keys and p.load is not None:
                        await drained()
                        async with pool.acquire() as conn:
                            await p.load(conn, build_schema(p.name), states[p.name], keys)
                ops = {p.name: [op for m in msgs for op in p.fold(states[p.name], m)] for p in projections}
                read = msgs[-1].seq
                # What survives a batch is the fold state (up to MAX_INDEX settlements): moved out of the
                # cyclic GC's reach, the full collections stop rescanning it (~15% of a rebuild; ADR 0006).
                # Young cycles are collected first, or garbage frozen with it would never be freed.
                gc.collect(1)
                gc.freeze()
                put = asyncio.ensure_future(queue.put((read, sum(len(m.events) for m in msgs), ops)))
                done, _ = await asyncio.wait({task, put}, return_when=asyncio.FIRST_COMPLETED)
                if task in done:
                    put.cancel()
                    task.result()
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
