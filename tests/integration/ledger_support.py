"""Helpers for the running-ledger tests: a ledger on a real nats-server, result collection, stream reads."""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from events import ledger as ev
from events.upcast import decode_commit
from services.adjudicator.group_commit import GroupCommitConfig
from services.compose.ledger import Ledger
from services.compose.process import bootstrap
from services.runtime.options import RuntimeOptions
from services.nats.feed_config import FeedConfig
from services.policy.state import Person, apply_commit
from services.runtime.settings import Settings
from events.subjects import PERSON_SUBJECT
from services.nats.reads import read_subject

SECRET = "integration-test-person-key-secret"
SEAL_SECRET = "integration-test-seal-secret-0123"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Clock:
    now: dt.datetime = dt.datetime(2022, 12, 1, 9, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def settings_for(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, person_key_secret=SECRET, seal_secret=SEAL_SECRET)


@contextlib.asynccontextmanager
async def running_ledger(nats_url: str, data_dir: Path, *, feed: FeedConfig | None = None,
                         transports: bool = True, group_commit: GroupCommitConfig | None = None,
                         integrity_poll: float = 2.0, **kwargs: Any) -> AsyncIterator[Ledger]:
    options = RuntimeOptions(feed=feed or FeedConfig(ack_wait=5.0, nak_delay=0.05),
                             group_commit=group_commit or GroupCommitConfig(), integrity_poll=integrity_poll)
    ledger = await bootstrap(settings_for(data_dir), nats_url=nats_url, options=options, connect_db=False,
                             **kwargs)
    try:
        if transports:
            await ledger.start_transports()
        yield ledger
    finally:
        await ledger.close()


class Collector:
    """Every message on ``ledger.out.>``, in arrival order."""

    def __init__(self) -> None:
        self.msgs: list[Any] = []
        self.changed = asyncio.Event()
        self.sub: Any = None

    async def start(self, nc: Any, subject: str = "ledger.out.>") -> Collector:
        async def on_msg(msg: Any) -> None:
            self.msgs.append(msg)
            self.changed.set()
        self.sub = await nc.subscribe(subject, cb=on_msg, pending_msgs_limit=1_000_000)
        await nc.flush()
        return self

    async def wait_for(self, predicate: Any, timeout: float = 30.0) -> None:
        async def loop() -> None:
            while not predicate(self.msgs):
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(loop(), timeout)

    def bodies(self) -> list[dict]:
        return [json.loads(m.data) for m in self.msgs]


async def rpc(nc: Any, message: bytes, msg_type: str = "settlement", timeout: float = 10.0) -> dict:
    reply = await nc.request(f"ledger.rpc.{msg_type}", message, timeout=timeout)
    return json.loads(reply.data)


async def person_from_stream(js: Any, key: str, psn_no: str) -> tuple[Person, list[ev.Commit]]:
    """Fold a person's subject from scratch (what a fresh adjudicator would see)."""
    person = Person(psn_no)
    commits = []
    for msg in await read_subject(js, PERSON_SUBJECT.format(key)):
        commit = decode_commit(msg.data)
        apply_commit(person, commit, msg.seq)
        commits.append(commit)
    return person, commits


async def rejected_events(js: Any) -> list[ev.MessageRejected]:
    out = []
    for msg in await read_subject(js, "ledger.ref.rejected"):
        out.extend(e for e in decode_commit(msg.data).events if isinstance(e, ev.MessageRejected))
    return out


def shared_paid(commits: list[ev.Commit]) -> Decimal:
    """Assistance paid against the shared annual cap, net of reversals."""
    total = Decimal(0)
    for commit in commits:
        for e in commit.events:
            if isinstance(e, ev.AssistancePaid) and e.counter == "shared":
                total += e.amount
            elif isinstance(e, ev.PaymentReversed) and e.counter == "shared":
                total -= e.amount
    return total


def worker_env(nats_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "NATS_", "DATABASE_"))}
    env.update(NATS_URL=nats_url, LEDGER_PERSON_KEY_SECRET=SECRET, LEDGER_SEAL_SECRET=SEAL_SECRET,
               LEDGER_DATA_DIR=str(data_dir),
               LEDGER_LOG_LEVEL="debug", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


async def start_worker(nats_url: str, data_dir: Path, **extra: str) -> subprocess.Popen:
    """A real adjudicator process (python -m services.cli.worker); returns once it takes messages."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir / f"worker-{time.monotonic_ns()}.log", "wb")   # a file: a full pipe would stall it
    proc = subprocess.Popen([sys.executable, "-m", "services.cli.worker"], cwd=REPO,
                            env=worker_env(nats_url, data_dir, **extra), stdout=subprocess.PIPE, stderr=log)
    log.close()
    proc.log_path = Path(log.name)  # type: ignore[attr-defined]
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=30)
    if line.strip() != b"ready":
        proc.kill()
        raise RuntimeError(f"worker did not start: {line!r} {Path(log.name).read_text()}")
    return proc


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    return proc.returncode


async def ledger_run(data_dir: Path, **extra: str) -> tuple[subprocess.Popen, str]:
    """`ledger run` as a process (any free HTTP and NATS port); returns it and its ``claims-ledger ready`` line.

    Its stderr (JSON logs) goes to ``<data_dir>/../ledger-run.log``; raises with that log if it exits first.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "NATS_", "DATABASE_"))}
    env.update(LEDGER_DATA_DIR=str(data_dir), LEDGER_NATS_PORT="0", LEDGER_HTTP_PORT="0",
               LEDGER_LOG_LEVEL="info", PYTHONUNBUFFERED="1", **extra)
    log_path = data_dir.parent / "ledger-run.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli.main", "run"], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=log)
    proc.log_path = log_path  # type: ignore[attr-defined]
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=120)
    if not line.startswith(b"claims-ledger ready"):
        stop_process(proc)
        raise RuntimeError(f"ledger run did not start: {line!r}\n{log_path.read_text()}")
    return proc, line.decode().strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_ledger_run(data_dir: Path, port: int, *, stderr: Any = subprocess.PIPE, **extra: str) -> subprocess.Popen:
    """A real `ledger run` (embedded servers unless ``NATS_URL``/``DATABASE_URL`` are in ``extra``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "NATS_", "DATABASE_"))}
    env.update(LEDGER_DATA_DIR=str(data_dir), LEDGER_NATS_PORT="0", LEDGER_HTTP_PORT=str(port),
               LEDGER_LOG_LEVEL="warning", PYTHONUNBUFFERED="1")
    env.update(extra)
    return subprocess.Popen([sys.executable, "-m", "services.cli.main", "run"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=stderr)


async def wait_ready(http: Any, proc: subprocess.Popen, timeout: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "ledger run exited"
        try:
            if (await http.get("/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError("ledger run did not become ready")


def sigint(proc: subprocess.Popen, timeout: float = 60) -> int:
    """Stop `ledger run` as Ctrl-C does; its exit code."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
