"""Fold output → PostgreSQL, in bulk, inside the caller's transaction.

Inserts go by COPY, one per table; upserts are first merged per row within the
batch (a person-year touched by fifty events becomes one statement), then sent
with executemany, one statement shape per group. Inserts go first: an upsert
may touch a row inserted in the same batch, never the other way round.
"""
from __future__ import annotations

from collections import defaultdict

import asyncpg

from projections.model import Insert, Op, Table, Upsert


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def upsert_sql(schema: str, table: Table, add: tuple[str, ...], put: tuple[str, ...]) -> str:
    columns = (*table.key, *add, *put)
    params = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    updates = [f"{_q(c)} = t.{_q(c)} + EXCLUDED.{_q(c)}" for c in add] + [f"{_q(c)} = EXCLUDED.{_q(c)}" for c in put]
    action = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
    return (f"INSERT INTO {_q(schema)}.{_q(table.name)} AS t ({', '.join(map(_q, columns))}) VALUES ({params}) "
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
        add, put = tuple(sorted(op.add)), tuple(sorted(op.set))
        statements[(op.table, add, put)].append((*op.key, *(op.add[c] for c in add), *(op.set[c] for c in put)))
    return inserts, statements


async def write(conn: asyncpg.Connection, schema: str, ops: list[Op]) -> None:
    inserts, statements = plan(ops)
    for table, rows in inserts.items():
        await conn.copy_records_to_table(table.name, records=rows, columns=list(table.columns), schema_name=schema)
    for (table, add, put), rows in statements.items():
        await conn.executemany(upsert_sql(schema, table, add, put), rows)
