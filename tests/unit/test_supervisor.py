"""The supervisor's restart loop on a real child process (`sleep`): death noticed, backoff, logs, giving up."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import structlog

from services.runtime.supervisor import Backoff, Supervisor


class Sleeper:
    """A stand-in server that is a real process; `fail` restarts raise before one succeeds."""

    name = "sleeper"

    def __init__(self, fail: int = 0) -> None:
        self.fail, self.process = fail, subprocess.Popen(["sleep", "60"])
        self.restarted = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def exit_status(self) -> int | None:
        return self.process.poll()

    def restart(self) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("port still taken")
        self.process = subprocess.Popen(["sleep", "60"])
        self.restarted += 1

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


async def _until(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def test_backoff_doubles_and_is_bounded() -> None:
    b = Backoff(initial=0.1, factor=2, maximum=1.0)
    assert [b.delay(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


async def test_a_killed_server_is_restarted_and_both_are_logged() -> None:
    server = Sleeper()
    supervisor = Supervisor(Backoff(initial=0.01), poll=0.01)
    supervisor.watch(server)
    supervisor.start()
    first = server.pid
    try:
        with structlog.testing.capture_logs() as logs:
            os.kill(first, signal.SIGKILL)
            await _until(lambda: server.restarted == 1 and not supervisor.is_down("sleeper"))
    finally:
        await supervisor.stop()
        server.stop()
    assert server.pid != first and supervisor.restarts("sleeper") == 1
    died = next(e for e in logs if e["event"] == "server_died")
    assert (died["server"], died["pid"], died["exit_code"]) == ("sleeper", first, -9)
    assert [e["attempt"] for e in logs if e["event"] == "server_restarted"] == [1]


async def test_failed_restarts_back_off_exponentially_then_succeed() -> None:
    server = Sleeper(fail=3)
    supervisor = Supervisor(Backoff(initial=0.01, factor=2, maximum=1.0), poll=0.01)
    supervisor.watch(server)
    supervisor.start()
    try:
        with structlog.testing.capture_logs() as logs:
            server.process.kill()
            await _until(lambda: supervisor.restarts("sleeper") == 1)
    finally:
        await supervisor.stop()
        server.stop()
    delays = [e["delay"] for e in logs if e["event"] == "server_restarting"]
    assert delays == [0.01, 0.02, 0.04, 0.08]
    assert [e["attempt"] for e in logs if e["event"] == "server_restart_failed"] == [1, 2, 3]
    assert [e["attempt"] for e in logs if e["event"] == "server_restarted"] == [4]


async def test_it_gives_up_after_max_attempts_when_told_to() -> None:
    server = Sleeper(fail=10)
    supervisor = Supervisor(Backoff(initial=0.01, max_attempts=2), poll=0.01)
    supervisor.watch(server)
    supervisor.start()
    try:
        with structlog.testing.capture_logs() as logs:
            server.process.kill()
            await _until(lambda: any(e["event"] == "server_not_restarted" for e in logs))
    finally:
        await supervisor.stop()
        server.stop()
    assert supervisor.is_down("sleeper") and server.restarted == 0
    assert [e["attempt"] for e in logs if e["event"] == "server_restart_failed"] == [1, 2]


async def test_stop_waits_for_a_restart_under_way_so_no_server_outlives_the_ledger() -> None:
    class Slow(Sleeper):
        def restart(self) -> None:
            import time
            time.sleep(0.3)                     # a server that takes a while to come up
            super().restart()

    server = Slow()
    supervisor = Supervisor(Backoff(initial=0.01), poll=0.01)
    supervisor.watch(server)
    supervisor.start()
    server.process.kill()
    await _until(lambda: supervisor.is_down("sleeper"))
    await asyncio.sleep(0.05)                   # inside restart() now
    await supervisor.stop()
    assert server.restarted == 1 and server.exit_status() is None   # finished: stop() below ends it
    server.stop()
