"""The read models against a fresh rebuild, and the `ledger` commands the checks run.

Once the projectors have caught up with the stream's end, every projection
table is copied aside (schema ``chaos_before``); then the real `ledger rebuild`
replays the stream from sequence 1 into fresh tables and swaps them in
(projections/rebuild.py); the live tables are then compared with the copies
row for row (``EXCEPT ALL`` over each row's text, both ways).
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field

import asyncpg

from benchmarks.chaos.stack import REPO, Stack
from projections.catalog import PROJECTIONS

BEFORE = "chaos_before"


def ledger_command(stack: Stack, *args: str, timeout: float = 600.0) -> tuple[int, str, str]:
    """Run ``ledger <args>`` as the operator would beside the running ledger; (exit code, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "services.cli.main", *args], cwd=REPO, env=stack.service_env(),
                          capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr[-4000:]


def ledger_json(stack: Stack, *args: str) -> tuple[int, dict | None, str]:
    code, out, err = ledger_command(stack, *args)
    try:
        return code, json.loads(out.strip().splitlines()[-1]), err
    except (ValueError, IndexError):
        return code, None, err or out[-2000:]


async def checkpoints(conn: asyncpg.Connection) -> dict[str, int]:
    return {r["projection"]: r["seq"] for r in await conn.fetch("SELECT projection, seq FROM projection_checkpoint")}


async def caught_up(database_url: str, last_seq: int, timeout: float = 180.0, stalled: float = 15.0) -> dict[str, int]:
    """Wait until every projection's checkpoint reached ``last_seq``, or moved no further for ``stalled``
    seconds (a projector that stopped on purpose, on a stream that lost events); the checkpoints then."""
    deadline = time.monotonic() + timeout
    seen: dict[str, int] = {}
    moved = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - moved < stalled:
        try:
            conn = await asyncpg.connect(database_url, timeout=5)
            try:
                now = await checkpoints(conn)
            finally:
                await conn.close()
            if now != seen:
                seen, moved = now, time.monotonic()
            if len(seen) == len(PROJECTIONS) and min(seen.values()) >= last_seq:
                return seen
        except (OSError, asyncpg.PostgresError):
            pass
        await asyncio.sleep(0.5)
    return seen


def _tables() -> list[str]:
    return [t.name for p in PROJECTIONS.values() for t in p.tables]


@dataclass
class Comparison:
    rows: int = 0
    differing: dict[str, tuple[int, int]] = field(default_factory=dict)   # table → (only live, only rebuilt)
    rebuild_seq: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and not self.differing


async def compare_with_rebuild(stack: Stack) -> Comparison:
    result = Comparison()
    conn = await asyncpg.connect(stack.database_url, timeout=10)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {BEFORE} CASCADE; CREATE SCHEMA {BEFORE}")
        for table in _tables():
            await conn.execute(f'CREATE TABLE {BEFORE}."{table}" AS SELECT * FROM public."{table}"')
        code, summary, err = await asyncio.to_thread(ledger_json, stack, "rebuild", "--json")
        if code != 0 or summary is None:
            result.error = f"ledger rebuild exited {code}: {' | '.join(err.strip().splitlines()[-2:])[-600:]}"
            return result
        result.rebuild_seq = int(summary.get("seq", 0))
        for table in _tables():
            result.rows += await conn.fetchval(f'SELECT count(*) FROM public."{table}"')
            only_live = await conn.fetchval(
                f'SELECT count(*) FROM (SELECT t::text FROM {BEFORE}."{table}" t '
                f'EXCEPT ALL SELECT t::text FROM public."{table}" t) d')
            only_rebuilt = await conn.fetchval(
                f'SELECT count(*) FROM (SELECT t::text FROM public."{table}" t '
                f'EXCEPT ALL SELECT t::text FROM {BEFORE}."{table}" t) d')
            if only_live or only_rebuilt:
                result.differing[table] = (only_live, only_rebuilt)
        await conn.execute(f"DROP SCHEMA {BEFORE} CASCADE")
    finally:
        await conn.close()
    return result
