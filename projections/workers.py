"""`ledger rebuild --workers N`: the load split over N processes, each with its own share (load.py).

This process folds share 0 itself; shares 1..N-1 run in spawned processes that
connect on their own (`connect`: a picklable callable giving an async context
manager whose value has `.js`; the CLI passes the very `connected` it uses)
and write into the same fresh tables. Their progress comes back through shared
memory, their failure through a pipe; if one fails or this process stops, the
others are stopped too. The swap stays in this process, once all are done.
"""
from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from projections.load import Loaded, Share, load_share, shares

Connect = Callable[[], contextlib.AbstractAsyncContextManager]


@dataclass(frozen=True)
class NatsAt:
    """The simplest `Connect`: a NATS URL with no credentials (tests, benchmarks)."""
    url: str

    @contextlib.asynccontextmanager
    async def __call__(self):
        from services.nats.connect import connect_command
        nc = await connect_command(self.url, "claims-ledger-rebuild")
        try:
            yield types.SimpleNamespace(js=nc.jetstream())
        finally:
            await nc.close()


@dataclass(frozen=True)
class Job:
    """Everything a worker process needs, picklable."""
    dsn: str
    connect: Connect | None
    names: tuple[str, ...]
    target: int
    schemas: dict[str, str]
    stream: str
    max_batch: int
    seal_key: bytes


async def load_all(pool: asyncpg.Pool, js: Any, job: Job, workers: int,
                   progress: Callable[[int, int], None] | None = None) -> Loaded:
    """Load every share; `progress(seq, events)` as the shares advance (seq scaled to the stream)."""
    parts = shares(workers, job.target)
    total = workers * job.target or 1         # every share reads 1..target (load.py)
    ctx = multiprocessing.get_context("spawn")
    board = ctx.Array("q", 2 * workers, lock=False)        # per share: last sequence stored, events

    def report() -> None:
        if progress is not None:
            done = sum(board[2 * i] for i in range(workers))
            progress(job.target * done // total, sum(board[2 * i + 1] for i in range(workers)))

    def mine(loaded: Loaded) -> None:
        board[0], board[1] = loaded.seq, loaded.events
        report()

    children: list[tuple[Any, Any]] = []
    own: asyncio.Future | None = None
    try:
        for share in parts[1:]:
            receive, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(job, share, board, send), daemon=True,
                               name=f"ledger-rebuild-{share.part}")
            proc.start()
            send.close()
            children.append((proc, receive))
        own = asyncio.ensure_future(load_share(pool, js, list(job.names), parts[0], job.target, job.schemas,
                                               seal_key=job.seal_key, stream=job.stream, max_batch=job.max_batch,
                                               progress=mine))
        while not own.done() or any(p.is_alive() for p, _ in children):
            if own.done():
                own.result()                   # raise this share's error at once
                await asyncio.sleep(0.25)
            else:
                await asyncio.wait({own}, timeout=0.25)
            report()
            for proc, receive in children:
                if not proc.is_alive() and proc.exitcode != 0:
                    raise RuntimeError(f"rebuild worker {proc.name} failed: {_error(proc, receive)}")
        own.result()
        report()
        return Loaded(max(board[2 * i] for i in range(workers)), sum(board[2 * i + 1] for i in range(workers)))
    finally:
        if own is not None and not own.done():
            own.cancel()
            await asyncio.gather(own, return_exceptions=True)
        for proc, receive in children:
            if proc.is_alive():
                proc.terminate()
            proc.join(5)
            receive.close()


def _error(proc: Any, receive: Any) -> str:
    try:
        if receive.poll():
            return receive.recv() or f"exit code {proc.exitcode}"
    except (EOFError, OSError):
        pass
    return f"exit code {proc.exitcode} (see its stderr)"


def _child(job: Job, share: Share, board: Any, send: Any) -> None:
    """A worker process: connect as `job.connect` says, load `share`, report through `board`. A spawned
    interpreter starts with structlog's defaults (stdout): its log lines, alarms included, go to stderr as
    the `ledger` command's do, so stdout stays the parent's --json."""
    from services.observability import configure_logging
    configure_logging()
    try:
        asyncio.run(_child_load(job, share, board))
        send.send(None)
    except BaseException as exc:
        send.send(f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from None
    finally:
        send.close()


async def _child_load(job: Job, share: Share, board: Any) -> None:
    from projections.db import create_pool
    parent = os.getppid()

    def mine(loaded: Loaded) -> None:
        if os.getppid() != parent:          # the rebuild that started us is gone: its tables will be dropped
            raise RuntimeError("the rebuild process stopped")
        board[2 * share.part], board[2 * share.part + 1] = loaded.seq, loaded.events

    pool = await create_pool(job.dsn, max_size=2)
    try:
        async with job.connect() as side:
            await load_share(pool, side.js, list(job.names), share, job.target, job.schemas, seal_key=job.seal_key,
                             stream=job.stream, max_batch=job.max_batch, progress=mine)
    finally:
        await pool.close()
