"""Where `ledger restore` finds each commit to put back: the read models' copy (`ledger_commit` and
`ledger_event`, byte for byte), and the old stream's tail, kept in PostgreSQL before the stream goes."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec

from events.chain import Unsealed, read_sealed
from projections.source import StreamReader

PAGE = 1000             # sequences read from PostgreSQL at a time


class _Envelope(msgspec.Struct):
    """A commit as the stores encode it (events/ledger.py `Commit`), from its stored parts."""
    commit_id: str
    correlation_id: str
    events: list[msgspec.Raw]
    results: msgspec.Raw
    seal: str


_ENCODER = msgspec.json.Encoder()


async def from_read_models(pool: Any, seal_key: bytes, upto: int) -> AsyncIterator[tuple[int, str, bytes, str]]:
    """(seq, subject, bytes, source) for 1..upto; source is "read models", else why nothing sealed is there."""
    for low in range(0, upto, PAGE):
        high = min(low + PAGE, upto)
        async with pool.acquire() as conn:
            commits = {r["seq"]: r for r in await conn.fetch(
                "SELECT seq, subject, commit_id, correlation_id, results, seal FROM ledger_commit "
                "WHERE seq > $1 AND seq <= $2", low, high)}
            events: dict[int, list[msgspec.Raw]] = {}
            for r in await conn.fetch("SELECT seq, payload FROM ledger_event WHERE seq > $1 AND seq <= $2 "
                                      "ORDER BY seq, idx", low, high):
                events.setdefault(r["seq"], []).append(msgspec.Raw(r["payload"]))
            forged = {r["seq"]: r for r in await conn.fetch(
                "SELECT seq, subject, reason FROM forged_message WHERE seq > $1 AND seq <= $2", low, high)}
        for seq in range(low + 1, high + 1):
            row = commits.get(seq)
            if row is None:
                bad = forged.get(seq)
                yield seq, bad["subject"] if bad else "", b"", (f"forged: {bad['reason']}" if bad else
                                                                "no copy in the read models")
                continue
            data = _ENCODER.encode(_Envelope(row["commit_id"], row["correlation_id"], events.get(seq, []),
                                             msgspec.Raw(row["results"]), row["seal"]))
            try:
                read_sealed(seal_key, row["subject"], data)
            except Unsealed as bad:
                yield seq, row["subject"], b"", f"the read models' copy does not verify: {bad}"
                continue
            yield seq, row["subject"], data, "read models"


async def keep_tail(pool: Any, js: Any, seal_key: bytes, after: int, last: int) -> None:
    """Save the old stream's messages after the read models' copy (sealed ones whole, others as a reason)."""
    rows = []
    async with StreamReader(js, after + 1, allow_gaps=True) as reader:
        seq = after
        while seq < last:
            batch = await reader.batch(timeout=2.0)
            if not batch:
                break                            # the rest is gone (holes): it is not restored
            for raw in batch:
                seq = raw.seq
                try:
                    read_sealed(seal_key, raw.subject, raw.data)
                    rows.append((raw.seq, raw.subject, raw.data, None))
                except Unsealed as bad:
                    rows.append((raw.seq, raw.subject, None, f"forged: {bad}"))
    async with pool.acquire() as conn:
        await conn.executemany("INSERT INTO integrity_restore_tail (seq, subject, data, reason) VALUES ($1, $2, $3, $4) "
                               "ON CONFLICT (seq) DO NOTHING", rows)


async def from_tail(pool: Any, after: int) -> AsyncIterator[tuple[int, str, bytes, str]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT seq, subject, data, reason FROM integrity_restore_tail WHERE seq > $1 "
                                "ORDER BY seq", after)
    expected = after + 1
    for r in rows:
        for missing in range(expected, r["seq"]):
            yield missing, "", b"", "gone from the old stream"
        expected = r["seq"] + 1
        if r["data"] is None:
            yield r["seq"], r["subject"], b"", r["reason"]
        else:
            yield r["seq"], r["subject"], bytes(r["data"]), "old stream"
