"""What a fold returns: row operations, and their meaning on plain dicts.

A read model is a pure fold `(state, message) → [Insert | Upsert]`. The same
operations are applied to PostgreSQL by `projections.sql` and to dicts by
`MemoryTables`, so a fold is tested without a database and the SQL is tested
by comparing the two (tests/integration/test_projector.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Table:
    """A read-model table: its key and every column (key columns first), in COPY order."""
    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    additive: frozenset[str] = frozenset()   # NOT NULL DEFAULT 0 columns that Upsert adds to


@dataclass(frozen=True, slots=True)
class Insert:
    """A new row that never changes afterwards (a line, an event, a warning)."""
    table: Table
    row: tuple


@dataclass(slots=True)
class Upsert:
    """Create-or-update one row: `add` to additive columns, `set` the others (last write wins)."""
    table: Table
    key: tuple
    add: dict[str, Any] = field(default_factory=dict)
    set: dict[str, Any] = field(default_factory=dict)

    def merge(self, later: Upsert) -> None:
        for column, value in later.add.items():
            self.add[column] = self.add.get(column, 0) + value
        self.set.update(later.set)


Op = Insert | Upsert


@dataclass(frozen=True, slots=True)
class Message:
    """One stream message as folds see it: a whole decision (its events), where and when it landed."""
    seq: int
    subject: str
    person_key: str | None
    events: list          # events.ledger.Event, in order
    raw_events: list      # each event's stored JSON bytes (for the audit trail)
    commit_id: str = ""
    correlation_id: str = ""
    results: bytes = b"[]"    # the results as stored (for `ledger restore`)
    seal: str = ""
    forged: str | None = None  # why this is not a commit the ledger sealed: then it has no events
    size: int = 0


class MemoryTables:
    """Read models as dicts: what PostgreSQL should hold after the same operations."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple, dict[str, Any]]] = {}

    def apply(self, ops: list[Op]) -> None:
        for op in ops:
            rows = self.tables.setdefault(op.table.name, {})
            if isinstance(op, Insert):
                row = dict(zip(op.table.columns, op.row))
                rows[tuple(row[k] for k in op.table.key)] = row
                continue
            row = rows.get(op.key)
            if row is None:
                row = rows[op.key] = dict.fromkeys(op.table.columns)
                row.update(zip(op.table.key, op.key))
                row.update(dict.fromkeys(op.table.additive, 0))
            for column, value in op.add.items():
                row[column] += value
            row.update(op.set)

    def rows(self, table: str) -> dict[tuple, dict[str, Any]]:
        return self.tables.get(table, {})
