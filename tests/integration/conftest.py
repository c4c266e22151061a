"""Real servers for integration tests: one nats-server and one PostgreSQL per session.

Both are the embedded servers ``ledger run`` uses (services.runtime.embedded),
started in temporary directories, so tests exercise the same binaries and
settings (JetStream with ``sync_interval: always`` and the accounts of
deploy/nats/accounts.conf; PostgreSQL 16 on a unix socket). ``nats_url`` and
``nc`` are the services' user (``ledger``); tests that act as the platform
use ``platform_nc`` / ``fresh_platform_nc``. Tests share them: use ``unique`` to keep subjects apart, and
``fresh_nats_url`` / ``fresh_database_url`` when a test needs an empty
stream or database of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from readside_helpers import env  # noqa: F401  (the read side's fixture, for every test here)

from services.runtime.embedded import EmbeddedPostgres, EmbeddedProcess, start_nats, start_postgres


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedProcess]:
    server = start_nats(tmp_path_factory.mktemp("nats-session"), port=0)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_url(nats_server: EmbeddedProcess) -> str:
    """The services' user (``ledger``), password in the URL."""
    return nats_server.url


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = start_postgres(tmp_path_factory.mktemp("pg-session"), delete_on_stop=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database_url(postgres_server: EmbeddedPostgres) -> str:
    return postgres_server.url


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    conn = await nats.connect(nats_url, connect_timeout=2, max_reconnect_attempts=0)
    yield conn
    await conn.close()


@pytest.fixture
def js(nc: NATS) -> JetStreamContext:
    return nc.jetstream()


@pytest.fixture
async def admin_js(nats_server: EmbeddedProcess) -> AsyncIterator[JetStreamContext]:
    """JetStream on the session server as the NATS admin: for tests that set up streams of their own."""
    conn = await nats.connect(nats_server.url_for("admin"), connect_timeout=2, max_reconnect_attempts=0)
    yield conn.jetstream()
    await conn.close()


@pytest.fixture
async def platform_nc(nats_server: EmbeddedProcess) -> AsyncIterator[NATS]:
    """A client of the session server as the platform (user ``platform``)."""
    conn = await nats.connect(nats_server.url_for("platform"), connect_timeout=2, max_reconnect_attempts=0)
    yield conn
    await conn.close()


@pytest.fixture
def unique() -> str:
    """A token unique to this test, valid in subjects and SQL names (32 hex chars)."""
    return uuid.uuid4().hex


@pytest.fixture
def fresh_nats(tmp_path: Path) -> Iterator[EmbeddedProcess]:
    """A private nats-server (~0.3 s to start) with empty LEDGER and PLATFORM_IN streams."""
    server = start_nats(tmp_path, port=0)
    yield server
    server.stop()


@pytest.fixture
def fresh_nats_url(fresh_nats: EmbeddedProcess) -> str:
    """The private server's URL as the services' user (``ledger``)."""
    return fresh_nats.url


@pytest.fixture
async def fresh_nc(fresh_nats_url: str) -> AsyncIterator[NATS]:
    """A client of the private server of `fresh_nats_url`, as the services."""
    conn = await nats.connect(fresh_nats_url)
    yield conn
    await conn.close()


@pytest.fixture
async def fresh_platform_nc(fresh_nats: EmbeddedProcess) -> AsyncIterator[NATS]:
    """A client of the private server as the platform: publishes platform.in.>, requests ledger.rpc.>."""
    conn = await nats.connect(fresh_nats.url_for("platform"))
    yield conn
    await conn.close()


@pytest.fixture
async def fresh_admin_nc(fresh_nats: EmbeddedProcess) -> AsyncIterator[NATS]:
    """A client of the private server as the NATS admin (creates and deletes streams)."""
    conn = await nats.connect(fresh_nats.url_for("admin"))
    yield conn
    await conn.close()


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (keeps host/socket query parameters)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
async def fresh_database_url(database_url: str, unique: str) -> AsyncIterator[str]:
    """An empty database of its own in the session PostgreSQL, dropped afterwards."""
    name = f"t_{unique}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(database_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
