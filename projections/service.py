"""The read side inside a running ledger: migrate, project and watch the stream in the background, report
lag and integrity for /ready.

`ledger run` starts one of these next to the adjudicator; more replicas (`ledger
project`) may run elsewhere — the advisory locks keep one owner per projection.
The integrity monitor (services/integrity/monitor.py) checks the stream once
before `start` returns, so the adjudicators' record is current before they
take messages (ADR 0010).
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from projections.db import migrated_pool
from projections.runner import Projector
from projections.source import last_sequence
from services.integrity.monitor import IntegrityMonitor

READY_LAG = 10_000      # /ready fails while a projection is further behind than this many messages


class ReadSide:
    """``project=False``: migrate, check and report, but leave projecting to `ledger project` processes."""

    def __init__(self, dsn: str, js: Any, seal_key: bytes, *, metrics: Any = None, replicas: int | None = None,
                 project: bool = True, **monitor: Any):
        self.dsn, self.js, self.seal_key, self.metrics, self.replicas = dsn, js, seal_key, metrics, replicas
        self.project = project
        self.monitor_options = monitor            # IntegrityMonitor's every / page / page_every
        self.pool: Any = None
        self.projector: Projector | None = None
        self.monitor: IntegrityMonitor | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> ReadSide:
        self.pool = await migrated_pool(self.dsn, max_size=3)
        self.projector = Projector(self.dsn, self.pool, self.js, seal_key=self.seal_key)
        self.monitor = IntegrityMonitor(self.pool, self.js, self.seal_key, metrics=self.metrics,
                                        replicas=self.replicas, **self.monitor_options)
        await self.monitor.tick()
        self._tasks = [asyncio.create_task(self.monitor.run(self._stop), name="integrity-monitor")]
        if self.project:
            self._tasks.append(asyncio.create_task(self.projector.run(self._stop), name="projector"))
        return self

    async def lag_check(self) -> tuple[str, bool, str]:
        """A `deps.ready_checks` entry: every projection within READY_LAG of the stream head."""
        head = await last_sequence(self.js)
        rows = await self.pool.fetch("SELECT projection, seq FROM projection_checkpoint")
        lags = {r["projection"]: head - r["seq"] for r in rows}
        ok = bool(lags) and max(lags.values()) <= READY_LAG
        return "projections", ok, ", ".join(f"{k} lag {v}" for k, v in sorted(lags.items())) or "not started"

    async def integrity_check(self) -> tuple[str, bool, str]:
        assert self.monitor is not None
        return await self.monitor.ready_check()

    async def close(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), 10)
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self.pool is not None:
            await self.pool.close()
