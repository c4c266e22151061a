"""What PostgreSQL remembers of the stream (table integrity_baseline) and of the read models' copy.

The baseline is written once, by the projector, in the same transaction as its first checkpoint:
from then on the read models count sequences of that stream, and nothing is folded from another
(`check_baseline` raises `StreamLoss` inside the fold's transaction). Only `ledger restore` and
`ledger accept-loss` move it to a new stream, bumping the epoch.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from services.integrity.findings import NOT_THE_SAME_STREAM, Baseline, Finding, StreamSeen, check_stream
from services.integrity.state import recorded
from events.subjects import STREAM


class StreamLoss(RuntimeError):
    """The stream is not the one the read models were built from: fold nothing."""

    def __init__(self, findings: list[Finding]):
        super().__init__("; ".join(f"{f.code}: {f.detail}" for f in findings))
        self.findings = findings


async def baseline_of(conn: Any, stream: str = STREAM) -> Baseline | None:
    row = await conn.fetchrow("SELECT stream_created, high_water, epoch, unrestored, holding, seal_key_id "
                              "FROM integrity_baseline WHERE stream = $1", stream)
    if row is None:
        return None
    return Baseline(row["stream_created"], row["high_water"], row["epoch"], row["unrestored"], row["holding"],
                    row["seal_key_id"])


async def checkpoints_of(conn: Any) -> dict[str, int]:
    return {r["projection"]: r["seq"] for r in await conn.fetch("SELECT projection, seq FROM projection_checkpoint")}


async def check_baseline(conn: Any, created: dt.datetime | None, last_seq: int, key_id: str,
                         stream: str = STREAM) -> None:
    """In the caller's transaction: remember `created` (and the seal key's id) if nothing is remembered yet,
    else both must match."""
    if created is None:
        raise StreamLoss([Finding("stream_missing", f"stream {stream} reports no creation time")])
    query = "SELECT stream_created, seal_key_id FROM integrity_baseline WHERE stream = $1"
    remembered = await conn.fetchrow(query, stream)
    if remembered is None:
        await conn.execute("INSERT INTO integrity_baseline (stream, stream_created, high_water, seal_key_id) "
                           "VALUES ($1, $2, $3, $4) ON CONFLICT (stream) DO NOTHING", stream, created, last_seq, key_id)
        remembered = await conn.fetchrow(query, stream)
    if remembered["seal_key_id"] is None:
        await conn.execute("UPDATE integrity_baseline SET seal_key_id = $2 WHERE stream = $1", stream, key_id)
    elif remembered["seal_key_id"] != key_id:
        raise StreamLoss([Finding("seal_key_mismatch", f"this process seals with key {key_id}, the ledger with "
                                                       f"{remembered['seal_key_id']}")])
    if remembered["stream_created"] != created:
        raise StreamLoss([Finding("stream_recreated", f"stream created {created.isoformat()}; the read models were "
                                                      f"projected from the one created "
                                                      f"{remembered['stream_created'].isoformat()}")])


async def remembered(conn: Any, js: Any, seal_key: bytes,
                     stream: str = STREAM) -> tuple[Baseline | None, dict[str, int]]:
    """The baseline and the checkpoints. Read them before the stream's info: a checkpoint or a high-water
    mark written in between would otherwise look like the stream going backwards.

    With no baseline in PostgreSQL (a new database), the sealed record the adjudicators read stands in
    for it: it outlives PostgreSQL as it outlives the stream, so a database and a stream lost together
    are still told from a new ledger. `Unsealed` if that record was written without the key."""
    baseline = await baseline_of(conn, stream)
    if baseline is None:
        state = await recorded(js, seal_key)
        if state is not None and state.stream_created:
            baseline = Baseline(dt.datetime.fromisoformat(state.stream_created), state.high_water, state.epoch)
    return baseline, await checkpoints_of(conn)


def gate(baseline: Baseline | None, checkpoints: dict[str, int], seen: StreamSeen, key_id: str) -> None:
    """Raise `StreamLoss` if the stream is not (all of) the one the checkpoints count in."""
    found = [f for f in check_stream(baseline, checkpoints, seen, key_id) if f.code in NOT_THE_SAME_STREAM]
    if found:
        raise StreamLoss(found)


async def raise_high_water(conn: Any, last_seq: int, stream: str = STREAM) -> None:
    await conn.execute("UPDATE integrity_baseline SET high_water = $2, updated_at = now() "
                       "WHERE stream = $1 AND high_water < $2", stream, last_seq)


async def forged_findings(conn: Any) -> list[Finding]:
    """Messages the projector met that the ledger did not seal (table forged_message)."""
    rows = await conn.fetch("SELECT seq, subject, person_key, reason FROM forged_message ORDER BY seq")
    return [Finding("forged_message", r["reason"], r["person_key"], r["subject"], r["seq"]) for r in rows]


async def chain_breaks(conn: Any, keys: list[str]) -> list[tuple[str, str, int]]:
    """(person_key, subject, seq) of the first projected event, per person of `keys`, that does not name the
    one before it: a sealed commit published again (its seal holds, its place in the chain does not)."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (person_key) person_key, subject, seq FROM ("
        "  SELECT person_key, subject, seq, idx, prev_hash, lag(hash, 1, '') OVER w AS before FROM ledger_event "
        "  WHERE person_key = ANY($1::text[]) WINDOW w AS (PARTITION BY person_key ORDER BY seq, idx)) e "
        "WHERE prev_hash <> before ORDER BY person_key, seq, idx", keys)
    return [(r["person_key"], r["subject"], r["seq"]) for r in rows]


async def projected_heads(conn: Any, after: str, limit: int) -> list[tuple[str, str, int, str]]:
    """(person_key, subject, seq, hash) of the last projected event of up to `limit` persons after `after`.

    Bounded work per page: the index ledger_event_person is read for those persons only."""
    rows = await conn.fetch(
        "SELECT k.person_key, h.subject, h.seq, h.hash FROM ("
        "  SELECT DISTINCT person_key FROM ledger_event WHERE person_key > $1 ORDER BY person_key LIMIT $2) k "
        "CROSS JOIN LATERAL (SELECT subject, seq, hash FROM ledger_event e WHERE e.person_key = k.person_key "
        "  ORDER BY seq DESC, idx DESC LIMIT 1) h ORDER BY k.person_key", after, limit)
    return [(r["person_key"], r["subject"], r["seq"], r["hash"]) for r in rows]
