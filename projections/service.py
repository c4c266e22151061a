"""The read side inside a running ledger: migrate, project in the background, report lag for /ready.

`ledger run` starts one of these next to the adjudicator; more replicas (`ledger
project`) may run elsewhere — the advisory locks keep one owner per projection.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from projections.db import migrated_pool
from projections.runner import Projector
from projections.source import last_sequence

READY_LAG = 10_000      # /ready fails while a projection is further behind than this many messages


class ReadSide:
    """``project=False``: migrate and report lag, but leave projecting to `ledger project` processes."""

    def __init__(self, dsn: str, js: Any, *, project: bool = True):
        self.dsn, self.js, self.project = dsn, js, project
        self.pool: Any = None
        self.projector: Projector | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> ReadSide:
        self.pool = await migrated_pool(self.dsn, max_size=2)
        if not self.project:
            return self
        self.projector = Projector(self.dsn, self.pool, self.js)
        self._task = asyncio.create_task(self.projector.run(self._stop), name="projector")
        return self

    async def lag_check(self) -> tuple[str, bool, str]:
        """A `deps.ready_checks` entry: every projection within READY_LAG of the stream head."""
        head = await last_sequence(self.js)
        rows = await self.pool.fetch("SELECT projection, seq FROM projection_checkpoint")
        lags = {r["projection"]: head - r["seq"] for r in rows}
        ok = bool(lags) and max(lags.values()) <= READY_LAG
        return "projections", ok, ", ".join(f"{k} lag {v}" for k, v in sorted(lags.items())) or "not started"

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), 10)
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self.pool is not None:
            await self.pool.close()
