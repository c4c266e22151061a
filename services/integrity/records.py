"""What operators did about a loss, as `GET /v1/verify` and `ledger verify` show it, and the events that
record it on the stream (``ledger.ref.integrity``: sealed reference commits, folded into the audit trail)."""
from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from events import ledger as ev
from events.chain import encode_sealed, seal_stored
from services.integrity.findings import Finding
from events.subjects import REF_SUBJECT

SUBJECT = REF_SUBJECT.format("integrity")


class Acceptance(msgspec.Struct):
    id: int
    accepted_at: dt.datetime
    reason: str
    findings: Any
    stream_created_before: dt.datetime | None
    stream_created_after: dt.datetime | None
    high_water_before: int
    last_seq: int
    lost_events: int
    event_seq: int | None


class Restore(msgspec.Struct):
    id: int
    restored_at: dt.datetime
    source: str
    findings: Any
    restored_upto: int
    not_restored: int
    unrestored: str | None


def sealed_event(seal_key: bytes, event: ev.LedgerEvent) -> bytes:
    """One integrity event as a sealed commit for ``ledger.ref.integrity``."""
    events, stored, _ = seal_stored([event], "")
    return encode_sealed(seal_key, SUBJECT, ev.Commit(event.event_id, event.correlation_id, events), stored)


def findings_json(findings: list[Finding]) -> str:
    return msgspec.json.encode(findings).decode()


async def acceptances(conn: Any) -> list[Acceptance]:
    rows = await conn.fetch("SELECT id, accepted_at, reason, findings, stream_created_before, stream_created_after, "
                            "high_water_before, last_seq, lost_events, event_seq FROM integrity_acceptance ORDER BY id")
    return [Acceptance(**{**dict(r), "findings": msgspec.Raw(r["findings"].encode())}) for r in rows]


async def restores(conn: Any) -> list[Restore]:
    rows = await conn.fetch("SELECT id, restored_at, source, findings, restored_upto, not_restored, unrestored "
                            "FROM integrity_restore ORDER BY id")
    return [Restore(**{**dict(r), "findings": msgspec.Raw(r["findings"].encode())}) for r in rows]


async def integrity_of(pool: Any, js: Any, seal_key: bytes, monitor: Any = None) -> tuple[list[Finding], list, list]:
    """(findings, acceptances, restores). With the read side's running monitor: its stream check, fresh,
    and its last person sweep; without one: a whole check now (every person)."""
    if monitor is not None:
        await monitor.check_stream()
        found = monitor.findings
    else:
        from services.integrity.monitor import IntegrityMonitor
        found = await IntegrityMonitor(pool, js, seal_key).check_all()
    async with pool.acquire() as conn:
        return found, await acceptances(conn), await restores(conn)
