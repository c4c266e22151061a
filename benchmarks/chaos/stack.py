"""The processes of one chaos scenario, all on 127.0.0.1 under one work dir, and stopping every one of them.

A *single* stack is what a one-machine deployment runs: `ledger run` with its
embedded, supervised nats-server and PostgreSQL. An *r3* stack replaces the
embedded nats-server by a 3-node loopback cluster (services/runtime/cluster.py)
with stream LEDGER at 3 replicas; PostgreSQL stays embedded. Either way beside
`ledger run` there are two adjudicator workers (``python -m
services.adjudicator.worker``) and two projector processes (``ledger project``):
`ledger run` runs with ``LEDGER_PROJECTOR=off``, so the projector is a process
of its own that can be killed alone, and the second replica takes over its
advisory locks as a deployment with two would.

Children run in their own sessions (a Ctrl-C reaches the harness only, which
then stops them in order); `close` resumes anything stopped, stops workers and
projectors, then `ledger run` (which stops its servers), then the cluster, and
kills what is left of any of them.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.runtime.cluster import NatsCluster
from services.runtime.nats_users import read_nats_users, url_for
from services.runtime.processes import alive

REPO = Path(__file__).resolve().parents[2]
TOKEN = "chaos-platform-token"
SUPERVISOR_TOKEN = "chaos-supervisor-token"
ADMIN_TOKEN = "chaos-admin-token"
SECRET = "chaos-person-key-secret-0123456789"


@dataclass
class Proc:
    name: str                       # "ledger", "worker-1", "projector-2", ...
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen | None = None
    stopped: bool = False           # SIGSTOPped by a fault
    starts: int = 0

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def spawn(self) -> None:
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(self.argv, cwd=REPO, env=self.env, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        self.starts += 1

    async def wait_line(self, prefix: bytes, timeout: float) -> bytes:
        """The first stdout line (what the ledger and the worker print when they take messages)."""
        assert self.popen is not None and self.popen.stdout is not None
        try:
            line = await asyncio.wait_for(asyncio.to_thread(self.popen.stdout.readline), timeout)
        except TimeoutError:
            line = b""
        if not line.startswith(prefix):
            raise RuntimeError(f"{self.name} did not start ({line!r}); log {self.log}:\n{_tail(self.log)}")
        return line

    def send(self, sig: int) -> None:
        if self.running:
            os.kill(self.pid, sig)
            if sig == signal.SIGSTOP:
                self.stopped = True
            elif sig == signal.SIGCONT:
                self.stopped = False

    def end(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.popen is None:
            return
        if self.stopped:
            self.send(signal.SIGCONT)
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "NATS_", "DATABASE_"))}
    env.update(PYTHONUNBUFFERED="1", LEDGER_LOG_LEVEL="warning", **extra)
    return env


@dataclass
class Stack:
    work_dir: Path
    mode: str = "single"                       # "single" or "r3"
    workers: int = 2
    projectors: int = 2
    ledger_env: dict[str, str] = field(default_factory=dict)
    cluster: NatsCluster | None = None
    procs: dict[str, Proc] = field(default_factory=dict)
    http_port: int = 0
    nats_address: str = ""                     # nats://127.0.0.1:<port> (single) or the cluster's URLs
    database_url: str = ""

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    def urls_for(self, user: str) -> str:
        if self.cluster is not None:
            return self.cluster.urls_for(user)
        users = read_nats_users(self.data_dir)
        assert users is not None
        return url_for(self.nats_address, users[user])

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def shared_env(self) -> dict[str, str]:
        """Settings every process of the ledger must agree on (the feed's durable consumer is one config)."""
        env = {"LEDGER_PERSON_KEY_SECRET": SECRET, "LEDGER_FEED_ACK_WAIT": "10"}
        if self.mode == "r3":
            env.update(LEDGER_STREAM_REPLICAS="3", LEDGER_FEED_REPLICAS="3")
        return env

    def service_env(self, **extra: str) -> dict[str, str]:
        """The environment of a worker, a projector or a CLI command beside `ledger run`."""
        return clean_env(NATS_URL=self.urls_for("ledger"), DATABASE_URL=self.database_url,
                         LEDGER_DATA_DIR=str(self.data_dir), **self.shared_env, **extra)

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> Stack:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self.mode == "r3":
            self.cluster = await asyncio.to_thread(NatsCluster(self.work_dir / "cluster").start)
        line = await self._start_ledger()
        if self.cluster is None:     # "... NATS nats://127.0.0.1:PORT ..." (the password is redacted)
            self.nats_address = next(w for w in line.decode().split() if w.startswith("nats://"))
        self.database_url = postgres_url(self.data_dir / "pg")
        for i in range(1, self.workers + 1):
            await self.start_worker(f"worker-{i}")
        for i in range(1, self.projectors + 1):
            self.start_projector(f"projector-{i}")
        return self

    async def _start_ledger(self, tries: int = 3) -> bytes:
        """`ledger run` on a free HTTP port; the port is picked before the ledger binds it, so a server of
        a scenario starting beside this one may take it first: then again on another port."""
        for attempt in range(1, tries + 1):
            self.http_port = free_port()
            env = clean_env(LEDGER_DATA_DIR=str(self.data_dir), LEDGER_HTTP_PORT=str(self.http_port),
                            LEDGER_NATS_PORT="0", LEDGER_PROJECTOR="off", LEDGER_TOKEN_PLATFORM=TOKEN,
                            LEDGER_TOKEN_SUPERVISOR=SUPERVISOR_TOKEN, LEDGER_TOKEN_ADMIN=ADMIN_TOKEN,
                            LEDGER_RESTART_DELAY="0.5", **self.shared_env)
            if self.cluster is not None:
                env.update(NATS_URL=self.cluster.urls, LEDGER_NATS_ADMIN_URL=self.cluster.urls_for("admin"))
            env.update(self.ledger_env)
            ledger = self._add("ledger", [sys.executable, "-m", "services.cli.main", "run"], env)
            ledger.spawn()
            try:
                return await ledger.wait_line(b"claims-ledger ready", 180)
            except RuntimeError as failed:
                ledger.end(signal.SIGINT, 60)
                self._kill_leftovers()
                if attempt == tries or "cannot listen for HTTP" not in str(failed):
                    raise
        raise AssertionError("unreachable")

    def _add(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        proc = self.procs[name] = Proc(name, argv, env, self.work_dir / f"{name}.log")
        return proc

    async def start_worker(self, name: str) -> Proc:
        proc = self.procs.get(name) or self._add(name, [sys.executable, "-m", "services.adjudicator.worker"],
                                                 self.service_env())
        proc.spawn()
        await proc.wait_line(b"ready", 60)
        return proc

    def start_projector(self, name: str) -> Proc:
        proc = self.procs.get(name) or self._add(name, [sys.executable, "-m", "services.cli.main", "project"],
                                                 self.service_env())
        proc.spawn()
        return proc

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        for proc in self.procs.values():
            if proc.stopped:
                proc.send(signal.SIGCONT)
        for proc in self.procs.values():
            if proc.name != "ledger":
                with contextlib.suppress(Exception):
                    proc.end(signal.SIGTERM, 20)
        ledger = self.procs.get("ledger")
        if ledger is not None:
            with contextlib.suppress(Exception):
                ledger.end(signal.SIGINT, 60)
        self._kill_leftovers()
        if self.cluster is not None:
            self.cluster.close()

    def _kill_leftovers(self) -> None:
        """Servers of a `ledger run` that did not stop them (it was killed, or timed out)."""
        for pid_file, sig in ((self.data_dir / "nats" / "nats-server.pid", signal.SIGKILL),
                              (self.data_dir / "pg" / "postmaster.pid", signal.SIGQUIT)):
            pid = _first_int(pid_file)
            if pid is not None and alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, sig)
                deadline = time.monotonic() + 10
                while alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)

    # --- what faults and checks need -----------------------------------------------------

    @property
    def nats_pid(self) -> int | None:
        return _first_int(self.data_dir / "nats" / "nats-server.pid")

    @property
    def postgres_pid(self) -> int | None:
        return _first_int(self.data_dir / "pg" / "postmaster.pid")

    def log_events(self, name: str = "ledger") -> list[dict]:
        """The JSON log lines of one process (structlog, one object a line)."""
        out = []
        for line in _tail(self.procs[name].log, 10**9).splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out


def _first_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def postgres_url(pgdata: Path) -> str:
    """The embedded PostgreSQL's URL from its ``postmaster.pid`` (line 4 the port, line 5 the socket dir)."""
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    return f"postgresql://postgres@/postgres?host={lines[4]}&port={lines[3]}"
