"""Blue/green rebuild: replay from sequence 1 into fresh tables, swap them in when caught up.

Each projection is built in schema `rebuild_<name>` (tables made `LIKE` the
live ones, so migrations stay the one definition) while the live tables keep
serving. The bulk, up to the stream's last sequence when the rebuild starts,
is folded lean and COPied by one or more workers (load.py, workers.py) into
tables without their indexes: only tables folded by upsert keep their primary
key. Then the indexes are built under their migrated names, the tables are
analyzed, and the live projector's own folds take the build the rest of the
way (`_replay`). Once the build has reached the stream's end, one transaction locks
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

from projections.build_tables import build_schema, create_tables, index_tables
from projections.catalog import Projection, select
from projections.heads import Heads
from projections.ownership import Ownership
from projections.runner import LIVE, check_cancelled, decode_batch, ensure_checkpoints
from projections.source import StreamReader, last_sequence
from projections.sql import write
from projections.workers import Connect, Job, load_all
from events.chain import seal_key_id
from services.integrity.baseline import check_baseline
from events.subjects import STREAM


class RebuildBusy(RuntimeError):
    """Another rebuild of the same projection is running."""


@dataclass
class Progress:
    seq: int = 0
    target: int = 0
    events: int = 0
    started: float = field(default_factory=time.perf_counter)      # perf_counter seconds
    phases: dict[str, float] = field(default_factory=dict)    # seconds: load, indexes, catch_up_and_swap

    @property
    def elapsed(self) -> float:    # seconds since the rebuild started
        return time.perf_counter() - self.started

    @property
    def rate(self) -> float:       # messages per second, for the progress bar
        elapsed = self.elapsed
        return self.seq / elapsed if elapsed > 0 else 0.0


async def _prepare(conn: asyncpg.Connection, p: Projection, target: int) -> None:
    await create_tables(conn, p)
    await conn.execute(
        "INSERT INTO projection_rebuild (projection, schema_name, status, seq, target_seq) "
        "VALUES ($1, $2, 'running', 0, $3) ON CONFLICT (projection) DO UPDATE SET schema_name = EXCLUDED.schema_name, "
        "status = 'running', seq = 0, target_seq = EXCLUDED.target_seq, started_at = now(), updated_at = now(), "
        "finished_at = NULL, error = NULL", p.name, build_schema(p.name), target)


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
            await conn.execute(f'DROP SCHEMA "{schema}"')
            await conn.execute("UPDATE projection_checkpoint SET seq = $2, generation = generation + 1, "
                               "owner = 'rebuild', updated_at = now() WHERE projection = $1", p.name, seq)
            await conn.execute("UPDATE projection_rebuild SET status = 'swapped', seq = $2, target_seq = $2, "
                               "updated_at = now(), finished_at = now() WHERE projection = $1", p.name, seq)
    for p in projections:
        await conn.execute(f'DROP SCHEMA "retired_{p.name}" CASCADE')
    return None


async def rebuild(dsn: str, pool: asyncpg.Pool, js: Any, names: list[str] | None = None, *, seal_key: bytes,
                  stream: str = STREAM, max_batch: int = 5000, progress: Callable[[Progress], None] | None = None,
                  workers: int = 1, connect: Connect | None = None) -> Progress:
    """Rebuild the named projections (all by default) and swap them in. With `workers` > 1 the load is
    split over that many processes, which connect through `connect` (see workers.py)."""
    projections = select(names)
    if workers > 1 and connect is None:
        raise ValueError("a rebuild with several workers needs `connect` for the other processes")
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
            await _load(dsn, pool, js, projections, stream, max_batch, state, progress, workers, connect, seal_key)
            began = time.perf_counter()
            await _replay(pool, js, projections, stream, max_batch, state, progress, seal_key, info.created)
            state.phases["catch_up_and_swap"] = round(time.perf_counter() - began, 2)
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


async def _load(dsn: str, pool: asyncpg.Pool, js: Any, projections: list[Projection], stream: str, max_batch: int,
                state: Progress, progress: Callable[[Progress], None] | None, workers: int,
                connect: Connect | None, seal_key: bytes) -> None:
    """The lean bulk load of sequences 1..target, then the indexes; `state.seq` ends at the target."""
    names = [p.name for p in projections]
    job = Job(dsn, connect, tuple(names), state.target, {n: build_schema(n) for n in names}, stream, max_batch,
              seal_key)

    def moved(seq: int, events: int) -> None:
        state.seq, state.events = seq, events
        if progress is not None:
            progress(state)

    task = asyncio.ensure_future(load_all(pool, js, job, workers, moved))
    try:
        noted = 0
        while not task.done():                   # for `GET /v1/projections`, about once a second
            await asyncio.wait({task}, timeout=1.0)
            if state.seq != noted and not task.done():
                noted = state.seq
                async with pool.acquire() as conn:
                    await conn.execute("UPDATE projection_rebuild SET seq = $2, updated_at = now() "
                                       "WHERE projection = ANY($1::text[])", names, noted)
        loaded = task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    state.seq, state.events = state.target, loaded.events
    began = time.perf_counter()
    state.phases["load"] = round(began - state.started, 2)
    async with pool.acquire() as conn:
        await index_tables(conn, projections)
        state.phases["indexes"] = round(time.perf_counter() - began, 2)
        await conn.execute("UPDATE projection_rebuild SET seq = $2, updated_at = now() "
                           "WHERE projection = ANY($1::text[])", names, state.seq)


async def _replay(pool: asyncpg.Pool, js: Any, projections: list[Projection], stream: str, max_batch: int,
                  state: Progress, progress: Callable[[Progress], None] | None, seal_key: bytes,
                  created: Any) -> None:
    """From the end of the load to the stream's end with the live projector's folds, then the swap.

    Folds batch N+1 while PostgreSQL stores batch N (one writer, one batch in flight). A fold whose
    bounded state lacks an entry waits for the writer to drain before reading it back from the build
    tables (the settlements of the load are all there).
    """
    states = {p.name: p.new_state() for p in projections}
    names = [p.name for p in projections]     # the persons' heads at the load's end: from the build's trail
    heads = Heads(from_start=state.seq == 0, trail=build_schema("audit_trail") if "audit_trail" in names else None)
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

    read = state.seq
    try:
        async with StreamReader(js, read + 1, stream=stream, max_batch=max_batch) as reader:
            while True:
                check_cancelled()
                if read >= state.target:
                    await drained()
                    state.target = max(state.target, await last_sequence(js, stream))
                    if state.seq >= state.target:
                        async with pool.acquire() as conn:
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
