"""Keep embedded servers running: notice a dead one, start it again with backoff, log both.

Why: `ledger run` owns its nats-server and PostgreSQL (ADR 0002), so nobody
else brings them back after a crash (issue 10). A server is anything with
``name``, ``pid``, ``exit_status()`` (``None`` while it runs, else what is known
of how it ended) and a blocking ``restart()`` that brings it back on the same
port and data dir, or raises. Restarts run in a thread, so the event loop keeps
answering ``unavailable`` meanwhile.

Backoff per server: the n-th restart in a row waits ``initial * factor**(n-1)``
seconds, at most ``maximum``; a server that stayed up ``reset_after`` seconds
starts again from ``initial``. It never gives up unless ``max_attempts`` is set
(a ledger that stops trying stays unavailable for good). The chaos harness
drives the same class from Python.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Protocol

import structlog

log = structlog.get_logger(component="ledger.supervisor")


class Supervised(Protocol):
    name: str

    @property
    def pid(self) -> int | None: ...

    def exit_status(self) -> int | None:
        """``None`` while running; else the exit code (negative: killed by that signal), or -1 if unknown."""

    def restart(self) -> None:
        """Start again on the same port and data dir; blocking; raises if it did not come up."""


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.1
    factor: float = 2.0
    maximum: float = 10.0
    reset_after: float = 30.0
    max_attempts: int | None = None

    def delay(self, attempt: int) -> float:
        return min(self.maximum, self.initial * self.factor ** (attempt - 1))


@dataclass
class _Watch:
    server: Supervised
    attempt: int = 0              # restarts in a row without staying up `reset_after`
    up_since: float = 0.0
    restarts: int = 0
    down: bool = False
    gave_up: bool = False


class Supervisor:
    def __init__(self, backoff: Backoff = Backoff(), poll: float = 0.1):
        self.backoff, self.poll = backoff, poll
        self._watches: dict[str, _Watch] = {}
        self._task: asyncio.Task | None = None
        self._restarting: asyncio.Future | None = None

    def watch(self, server: Supervised) -> None:
        self._watches[server.name] = _Watch(server, up_since=time.monotonic())

    def restarts(self, name: str) -> int:
        return self._watches[name].restarts

    def is_down(self, name: str) -> bool:
        return self._watches[name].down

    def start(self) -> Supervisor:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        """Stop watching (before the servers are stopped on purpose); a restart under way finishes first."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._restarting is not None:      # a thread cannot be cancelled: let it finish, so that
            await asyncio.gather(self._restarting, return_exceptions=True)   # stop() sees its process
            self._restarting = None

    async def _run(self) -> None:
        while True:
            for watch in self._watches.values():
                if watch.gave_up:
                    continue
                status = watch.server.exit_status()
                if status is not None:
                    await self._bring_back(watch, status)
            await asyncio.sleep(self.poll)

    async def _bring_back(self, watch: _Watch, status: int) -> None:
        server, b = watch.server, self.backoff
        watch.down = True
        now = time.monotonic()
        if now - watch.up_since >= b.reset_after:
            watch.attempt = 0
        down_at = now
        log.error("server_died", server=server.name, pid=server.pid, exit_code=status,
                  up_seconds=round(now - watch.up_since, 3))
        while True:
            watch.attempt += 1
            if b.max_attempts is not None and watch.attempt > b.max_attempts:
                watch.gave_up = True
                log.critical("server_not_restarted", server=server.name, attempts=watch.attempt - 1)
                return
            delay = b.delay(watch.attempt)
            log.warning("server_restarting", server=server.name, attempt=watch.attempt, delay=round(delay, 3))
            await asyncio.sleep(delay)
            self._restarting = asyncio.ensure_future(asyncio.to_thread(server.restart))
            try:
                await asyncio.shield(self._restarting)
            except Exception as exc:
                log.error("server_restart_failed", server=server.name, attempt=watch.attempt, error=str(exc)[:2000])
                continue
            watch.down = False
            watch.restarts += 1
            watch.up_since = time.monotonic()
            log.warning("server_restarted", server=server.name, pid=server.pid, attempt=watch.attempt,
                        down_seconds=round(watch.up_since - down_at, 3))
            return
