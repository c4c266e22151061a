"""Exactly one owner per projection: a session-level advisory lock on a dedicated connection.

The lock lives as long as the connection: a replica that dies (or loses its
database session) releases it, and another replica's next `try_acquire` takes
the projection over. The lock alone is not trusted for correctness: every
batch also re-reads its checkpoint row FOR UPDATE and compares it with what
this replica last wrote (the fence, see `projections.runner`).
"""
from __future__ import annotations

import hashlib

import asyncpg


def lock_key(kind: str, name: str) -> int:
    """A stable signed 64-bit advisory lock key for `kind:name`."""
    digest = hashlib.sha256(f"claims-ledger:{kind}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Ownership:
    def __init__(self, conn: asyncpg.Connection, names: list[str], kind: str = "projection"):
        self.conn, self.names, self.kind = conn, list(names), kind
        self.owned: list[str] = []

    async def try_acquire(self) -> list[str]:
        """Take every projection nobody holds; returns the ones taken now."""
        taken = []
        for name in self.names:
            if name in self.owned:
                continue
            if await self.conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(self.kind, name)):
                self.owned.append(name)
                taken.append(name)
        return taken

    def alive(self) -> bool:
        return not self.conn.is_closed()

    async def release(self) -> None:
        if self.alive():
            for name in self.owned:
                await self.conn.execute("SELECT pg_advisory_unlock($1)", lock_key(self.kind, name))
        self.owned = []
