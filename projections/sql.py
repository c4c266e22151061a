"""Fold output → PostgreSQL, in bulk, inside the caller's transaction.

Inserts go by COPY, one per table; upserts are first merged per row within the
batch (a person-year touched by fifty events becomes one row), padded to every
additive column so that few statement shapes remain, then sent per shape: a big
group is COPied into a temporary staging table and merged with one
`INSERT ... SELECT ... ON CONFLICT` (PostgreSQL does the per-row work in C), a
small one goes by executemany. Inserts go first: an upsert may touch a row
inserted in the same batch, never the other way round.

Rebuilds send COPY CSV and text (`csv_line`, `copy_lines`): values are the
strings the events were stored with, so no Decimal or datetime is built per
column and asyncpg's per-value binary encoding (~15 µs a message, ADR 0007)
is gone. Only commits whose JSON has a backslash pay for escaping.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import asyncpg
import msgspec

from projections.model import Insert, Op, Table, Upsert


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


STAGE_FROM = 64       # rows of one shape from which staging beats executemany


def upsert_sql(schema: str, table: Table, add: tuple[str, ...], put: tuple[str, ...], stage: str | None = None,
               where: str = "") -> str:
    columns = (*table.key, *add, *put)
    names = ", ".join(map(_q, columns))
    source = (f"SELECT {names} FROM {_q(stage)}{where and ' WHERE ' + where}" if stage else
              "VALUES (" + ", ".join(f"${i}" for i in range(1, len(columns) + 1)) + ")")
    updates = [f"{_q(c)} = t.{_q(c)} + EXCLUDED.{_q(c)}" for c in add] + [f"{_q(c)} = EXCLUDED.{_q(c)}" for c in put]
    action = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
    return (f"INSERT INTO {_q(schema)}.{_q(table.name)} AS t ({names}) {source} "
            f"ON CONFLICT ({', '.join(map(_q, table.key))}) {action}")


NULL = "\\N"        # COPY text's NULL
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_ENCODE = msgspec.json.Encoder().encode
CSV = {"format": "csv", "null": "null"}


def needs_escaping(data: bytes | str) -> bool:
    """Whether strings decoded from this JSON can hold a quote, backslash or control character: only
    if it has a backslash (JSON escapes them). Raw newlines or tabs can only be whitespace between
    tokens, but the stored bytes themselves go into the audit trail's COPY text."""
    if isinstance(data, str):
        return '"' in data or "\\" in data
    return b"\\" in data or b"\n" in data or b"\r" in data or b"\t" in data


def csv_line(values: tuple, escape: bool = False) -> bytes:
    """One line of COPY CSV with NULL 'null'. Unescaped values (str with no quote, backslash or control
    character; int, bool, Decimal, None) are exactly a JSON array without its brackets, which msgspec
    writes in C: strings quoted, None as the bare null, Decimal as its quoted digits."""
    if not escape:
        return _ENCODE(values)[1:-1]
    return b",".join([_csv_value(v) for v in values])


def _csv_value(v) -> bytes:
    if v is None:
        return b"null"
    if isinstance(v, bool):
        return b"true" if v else b"false"
    if isinstance(v, (bytes, bytearray, memoryview)):
        return b'"\\x' + bytes(v).hex().encode() + b'"'     # bytea, hex form (no escapes in CSV)
    return b'"' + str(v).replace('"', '""').encode() + b'"'


def text_row(values: tuple) -> str:
    """One COPY text line of values that need no escaping: None is NULL, the rest as `str()` gives them."""
    return "\t".join([NULL if v is None else str(v) for v in values])


def escaped_row(values: tuple) -> str:
    return "\t".join([NULL if v is None else str(v).translate(_ESCAPES) for v in values])


def escape_bytes(data: bytes) -> bytes:
    return data.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r").replace(b"\t", b"\\t")


async def copy_lines(conn: asyncpg.Connection, schema: str, table: Table, lines: list[bytes],
                     options: dict | None = None) -> None:
    """COPY `lines` of `table` (all its columns, in order): CSV as `csv_line` writes it, or text."""
    if lines:
        await conn.copy_to_table(table.name, source=memoryview(b"\n".join(lines) + b"\n"),  # bytes: a path
                                 columns=list(table.columns), schema_name=schema, **(options or CSV))


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
    return inserts, shapes(merged.values())


def shapes(upserts: Iterable[Upsert]) -> dict[tuple, list[tuple]]:
    """Merged upserts as rows per statement shape (table, additive columns, columns set)."""
    statements: dict[tuple, list[tuple]] = defaultdict(list)
    for op in upserts:
        add = tuple(sorted(op.table.additive)) if op.table.additive else tuple(sorted(op.add))
        put = tuple(sorted(op.set))
        statements[(op.table, add, put)].append(
            (*op.key, *(op.add.get(c, 0) for c in add), *(op.set[c] for c in put)))
    return statements


async def _stage(conn: asyncpg.Connection, schema: str, table: Table) -> str:
    stage = f"stage_{table.name}"
    await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_q(stage)} (LIKE {_q(schema)}.{_q(table.name)} "
                       "INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    await conn.execute(f"TRUNCATE {_q(stage)}")
    return stage


async def write_staged(conn: asyncpg.Connection, schema: str, statements: dict[tuple, list[tuple]],
                       escape: bool = False) -> None:
    """Merged rows per statement shape (as `shapes` gives them) from lean folds: staged by COPY CSV
    (see `csv_line`), then merged into the table by one INSERT ... ON CONFLICT per shape."""
    for (table, add, put), rows in statements.items():
        stage = await _stage(conn, schema, table)
        data = b"\n".join([csv_line(r, escape) for r in rows]) + b"\n"
        await conn.copy_to_table(stage, source=memoryview(data), columns=[*table.key, *add, *put], **CSV)
        await conn.execute(upsert_sql(schema, table, add, put, stage))


Merged = tuple[Table, tuple[str, ...], tuple[str, ...], list[tuple]]   # table, added, set, rows


async def write_merged(conn: asyncpg.Connection, schema: str, merged: list[Merged], escape: bool = False) -> None:
    """Lean folds' merged rows, each (key, added figures, every column that may be set, then `present`:
    bit i when `put[i]` is set). One COPY CSV into a staging table per table, then one round trip for
    every merge: an INSERT ... ON CONFLICT per combination of columns set, as `upsert_sql` writes it."""
    merges = []
    for table, add, put, rows in merged:
        if not rows:
            continue
        stage = f"merge_{table.name}"
        await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_q(stage)} (LIKE {_q(schema)}.{_q(table.name)} "
                           "INCLUDING DEFAULTS, present integer) ON COMMIT DELETE ROWS")
        data = b"\n".join([csv_line(r, escape) for r in rows]) + b"\n"
        await conn.copy_to_table(stage, source=memoryview(data), columns=[*table.key, *add, *put, "present"], **CSV)
        for present in sorted({r[-1] for r in rows}):
            columns = tuple(c for i, c in enumerate(put) if present & (1 << i))
            merges.append(upsert_sql(schema, table, add, columns, stage, where=f"present = {present}"))
        merges.append(f"TRUNCATE {_q(stage)}")
    if merges:
        await conn.execute("; ".join(merges))


async def write(conn: asyncpg.Connection, schema: str, ops: list[Op]) -> None:
    inserts, statements = plan(ops)
    for table, rows in inserts.items():
        await conn.copy_records_to_table(table.name, records=rows, columns=list(table.columns), schema_name=schema)
    for (table, add, put), rows in statements.items():
        if len(rows) < STAGE_FROM:
            await conn.executemany(upsert_sql(schema, table, add, put), rows)
            continue
        stage = await _stage(conn, schema, table)
        await conn.copy_records_to_table(stage, records=rows, columns=[*table.key, *add, *put])
        await conn.execute(upsert_sql(schema, table, add, put, stage))
