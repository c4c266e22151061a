"""PostgreSQL plumbing of the read side: pools, codecs and schema migrations.

Migrations are `projections/migrations/NNNN_name.sql`, applied in order, each
in its own transaction, under an advisory lock so replicas starting together
apply each file once. An applied file whose text changed stops the start: a
migration is history, not configuration.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x4C45_4447_0000_0001   # pg advisory lock key: "LEDG" / migrations


async def setup_connection(conn: asyncpg.Connection) -> None:
    """`json` travels as the stored bytes in both directions (no re-encoding of event payloads)."""
    await conn.set_type_codec("json", schema="pg_catalog", format="binary",
                              encoder=lambda value: value if isinstance(value, bytes) else value.encode(),
                              decoder=bytes)


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=setup_connection)


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration, ordered by version."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        head = path.name.split("_", 1)[0]
        if not head.isdigit():
            raise ValueError(f"migration {path.name} must start with a number, e.g. 0002_add_index.sql")
        found.append((int(head), path.name, path.read_text(encoding="utf-8")))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a version in {directory}")
    return sorted(found)


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the migrations not yet applied; returns the names applied now."""
    applied_now = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
            version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now())""")
        done = {r["version"]: r for r in await conn.fetch("SELECT version, name, checksum FROM schema_migrations")}
        for version, name, sql in migration_files(directory):
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if version in done:
                if done[version]["checksum"] != checksum:
                    raise RuntimeError(f"migration {name} changed after it was applied; add a new migration instead")
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                                   version, name, checksum)
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


async def migrated_pool(dsn: str, **kwargs) -> asyncpg.Pool:
    """A pool on a database whose read-model tables are up to date."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return await create_pool(dsn, **kwargs)
