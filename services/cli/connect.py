"""Where the read-side commands find the ledger: NATS_URL and DATABASE_URL, or the local `ledger run`.

With nothing configured, `ledger run` listens for NATS on 127.0.0.1:LEDGER_NATS_PORT (user `ledger`
from the data directory's nats-users.json) and keeps
PostgreSQL in the data directory; these commands join those (pgserver shares a running server
between processes) rather than starting servers of their own.
"""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from services.nats.connect import connect_command
from services.runtime.nats_users import read_nats_users, redact_url, url_for
from services.runtime.secrets import person_key, person_key_secret, seal_secret
from services.runtime.settings import Settings, load_settings


@dataclass
class ReadSide:
    settings: Settings
    nats_url: str
    database_url: str | None
    nc: Any
    js: Any
    secret: bytes
    seal_key: bytes

    def person_key(self, psn_no: str) -> str:
        return person_key(self.secret, psn_no)


def _embedded_url(settings: Settings, user: str = "ledger") -> str:
    """The local `ledger run`'s NATS as ``user`` (from the data dir's nats-users.json)."""
    address = f"nats://127.0.0.1:{settings.nats_port}"
    users = read_nats_users(settings.data_dir)
    return url_for(address, users[user]) if users is not None else address


def admin_url(settings: Settings) -> str | None:
    """A NATS admin's URL, for what only an operator may do (recreate a stream): LEDGER_NATS_ADMIN_URL, or
    the local `ledger run`'s admin user; None with an external NATS and no admin given."""
    if settings.nats_admin_url is not None:
        return settings.nats_admin_url
    return _embedded_url(settings, "admin") if settings.nats_url is None else None


@contextlib.asynccontextmanager
async def connected(need_database: bool = True) -> AsyncIterator[ReadSide]:
    settings = load_settings()
    nats_url = settings.nats_url or _embedded_url(settings)
    database_url = settings.database_url
    pg = None
    if database_url is None and need_database:
        from services.runtime.embedded import start_postgres
        pg = start_postgres(settings.data_dir)
        database_url = pg.url
    try:
        nc = await connect_command(nats_url, **settings.nats_auth)
    except Exception as exc:
        if pg is not None:
            pg.stop()
        raise ConnectionError(f"cannot reach NATS at {redact_url(nats_url)} ({exc}); "
                              "start `ledger run` or set NATS_URL") from None
    try:
        yield ReadSide(settings, nats_url, database_url, nc, nc.jetstream(), person_key_secret(settings),
                       seal_secret(settings))
    finally:
        await nc.close()
        if pg is not None:
            pg.stop()
