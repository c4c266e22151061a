"""What the console keeps in this process: the last whole-ledger chain verification.

Verifying the whole stream can take minutes on a big ledger, so a supervisor
starts it and the overview shows where it stands. It is not persisted: after
a restart the overview says the chain has not been verified since.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any
from services.api.deps import ApiDeps

log = logging.getLogger("ledger.console")


@dataclass
class ChainCheck:
    status: str = "never"                  # never | running | done | failed
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    report: Any = None                     # projections.verify.VerifyReport
    error: str | None = None
    _task: asyncio.Task | None = field(default=None, repr=False)

    def start(self, deps: ApiDeps) -> None:
        if self.status == "running":
            return
        self.status, self.started_at, self.finished_at, self.error = "running", _now(), None, None
        self._task = asyncio.create_task(self._run(deps))

    async def _run(self, deps: ApiDeps) -> None:
        from services.api.supervision import run_verify
        try:
            self.report = await run_verify(deps)
            self.status = "done"
        except Exception as exc:            # shown on the overview; the ledger itself is untouched
            log.warning("chain verification failed: %s", type(exc).__name__)
            self.status, self.error = "failed", type(exc).__name__
        finally:
            self.finished_at = _now()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class ConsoleState:
    chain: ChainCheck = field(default_factory=ChainCheck)
