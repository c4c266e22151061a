"""Fold output → PostgreSQL, in bulk, inside the caller's transaction.

Inserts go by COPY, one per table; upserts are first merged per row within the
batch (a person-year touched by fifty events becomes one row), padded to every
additive column so that few statement shapes remain, then sent per shape: a big
group is COPied into a temporary staging table and merged with one
`INSERT ... SELECT ... ON CONFLICT` (PostgreSQL does the per-row work in C), a
small one goes by executemany. Inserts go first: an upsert may touch a row
inserted in the same batch, never the other way round.
"""
from __future__ import annotations

from collections import defaultdict

import asyncpg

from projections.model import Insert, Op, Table, Upsert


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


STAGE_FROM = 64       # rows of one shape from which staging beats executemany


def upsert_sql(schema: str, table: Table, add: tuple[str, ...], put: tuple[str, ...], stage: str | None = None) -> str:
    columns = (*table.key, *add, *put)
    names = ", ".join(map(_q, columns))
    source = (f"SELECT {names} FROM {_q(stage)}" if stage else
              "VALUES (" + ", ".join(f"${i}" for i in range(1, len(columns) + 1)) + ")")
    updates = [f"{_q(c)} = t.{_q(c)} + EXCLUDED.{_q(c)}" for c in add] + [f"{_q(c)} = EXCLUDED.{_q(c)}" for c in put]
    action = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
    return (f"INSERT INTO {_q(schema)}.{_q(table.name)} AS t ({names}) {source} "
            f"ON CONFLICT ({', '.join(map(_q, table.key))}) {action}")


def plan(ops: list[Op]) -> tuple[dict[Table, list[tuple]], dict[tuple, list[tuple]]]:
    """Group `ops` into COPY rows per table and merged upsert rows per statement shape."""
    inserts: dict[Table, list[tuple]] = defaultdict(list)
    merged: dict[tuple[str, tuple], Upsert] = {}
    for op in ops:
        if isinstance(op, Insert):
            inserts[op.table].append(op.row)
            continue
        key = (op.table.name, op.key)
        found = merged.get(key)
        if found is None:
            merged[key] = Upsert(op.table, op.key, dict(op.add), dict(op.set))
        else:
            found.merge(op)
    statements: dict[tuple, list[tuple]] = defaultdict(list)
    for op in merged.values():
        add = tuple(sorted(op.table.additive)) if op.table.additive else tuple(sorted(op.add))
        put = tuple(sorted(op.set))
        statements[(op.table, add, put)].append(
            (*op.key, *(op.add.get(c, 0) for c in add), *(op.set[c] for c in put)))
    return inserts, statements


async def write(conn: asyncpg.Connection, schema: str, ops: list[Op]) -> None:
    inserts, statements = plan(ops)
    for table, rows in inserts.items():
        await conn.copy_records_to_table(table.name, records=rows, columns=list(table.columns), schema_name=schema)
    for (table, add, put), rows in statements.items():
        if len(rows) < STAGE_FROM:
            await conn.executemany(upsert_sql(schema, table, add, put), rows)
            continue
        stage = f"stage_{table.name}"
        await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_q(stage)} (LIKE {_q(schema)}.{_q(table.name)} "
                           "INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        await conn.execute(f"TRUNCATE {_q(stage)}")
        await conn.copy_records_to_table(stage, records=rows, columns=[*table.key, *add, *put])
        await conn.execute(upsert_sql(schema, table, add, put, stage))
