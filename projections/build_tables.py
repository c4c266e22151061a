"""The fresh tables of a rebuild: made like the live ones without their indexes, indexed after the load.

`CREATE TABLE ... (LIKE live INCLUDING ALL EXCLUDING INDEXES)` keeps columns,
defaults and NOT NULLs (migrations stay the one definition); tables folded by
upsert get their primary key at once (ON CONFLICT needs it), the others every
key and index after the bulk load, each built by one sort rather than row by
row. Indexes and constraints take the live names, which are per schema: when
a build moves to `public` its indexes are already named as migrated.
"""
from __future__ import annotations

import asyncpg

from projections.catalog import Projection
from projections.runner import LIVE


def build_schema(name: str) -> str:
    return f"rebuild_{name}"


async def create_tables(conn: asyncpg.Connection, p: Projection) -> None:
    schema = build_schema(p.name)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; DROP SCHEMA IF EXISTS "retired_{p.name}" CASCADE;'
                       f'CREATE SCHEMA "{schema}"')
    for table in p.tables:
        await conn.execute(f'CREATE TABLE "{schema}"."{table.name}" '
                           f'(LIKE {LIVE}."{table.name}" INCLUDING ALL EXCLUDING INDEXES)')
        if table.additive:                     # folded by upsert: ON CONFLICT needs the key during the load
            await _index(conn, schema, table.name, keys_only=True)


_INDEXES = r"""
    SELECT i.relname AS name, x.indisunique AS is_unique, x.indisprimary AS is_key, c.conname AS constraint_name,
           pg_get_constraintdef(c.oid) AS constraint_def,
           regexp_replace(pg_get_indexdef(x.indexrelid), '^.* ON \S+ ', '') AS shape
    FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
    LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
    WHERE x.indrelid = format('%I.%I', $1::text, $2::text)::regclass ORDER BY x.indisprimary DESC, i.relname"""


async def _index(conn: asyncpg.Connection, schema: str, table: str, keys_only: bool = False) -> None:
    """Give the build table the live one's keys and indexes, under the live names."""
    for r in await conn.fetch(_INDEXES, LIVE, table):
        exists = await conn.fetchval("SELECT to_regclass(format('%I.%I', $1::text, $2::text))", schema, r["name"])
        if exists or (keys_only and not r["is_key"]):
            continue
        if r["constraint_name"]:
            await conn.execute(f'ALTER TABLE "{schema}"."{table}" ADD CONSTRAINT "{r["constraint_name"]}" '
                               f'{r["constraint_def"]}')
        else:
            unique = "UNIQUE " if r["is_unique"] else ""
            await conn.execute(f'CREATE {unique}INDEX "{r["name"]}" ON "{schema}"."{table}" {r["shape"]}')


_INDEXED_COLUMNS = """
    SELECT DISTINCT a.attname FROM pg_index x
    JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey)
    WHERE x.indrelid = format('%I.%I', $1::text, $2::text)::regclass ORDER BY 1"""


async def index_tables(conn: asyncpg.Connection, projections: list[Projection]) -> None:
    """After the bulk load: every key and index, then planner statistics for the columns readers look rows
    up by (the indexed ones; ANALYZE of every column, json payloads too, cost more than the indexes).
    Autovacuum analyzes the rest later."""
    await conn.execute("SET maintenance_work_mem = '256MB'")
    for p in projections:
        schema = build_schema(p.name)
        for table in p.tables:
            await _index(conn, schema, table.name)
            columns = ", ".join(f'"{r["attname"]}"' for r in await conn.fetch(_INDEXED_COLUMNS, schema, table.name))
            await conn.execute(f'ANALYZE "{schema}"."{table.name}" ({columns})')
    await conn.execute("RESET maintenance_work_mem")
