"""`ledger accept-loss --reason "…"`: an operator accepts that the stream lost what the read models remember.

It is recorded (table integrity_acceptance, and a `loss_accepted` event on ``ledger.ref.integrity``,
visible in `GET /v1/verify`), and the ledger then goes on from the stream as it is: in one
transaction the audit trail of what is given up is kept (integrity_lost_event: every event, or the
affected persons' events), the read models are emptied and re-projected from sequence 1 of the
current stream, and the baseline moves to it (epoch + 1, so every adjudicator drops its caches).
What was lost is then truly gone: a settlement re-sent is decided again, with caps as the stream
has them. So it refuses while a forged message stands (that is not a loss: `ledger restore`
removes it), and it is never automatic.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from events import ledger as ev
from events.chain import seal_key_id
from projections.catalog import PROJECTIONS
from services.integrity.baseline import baseline_of
from services.integrity.findings import FORGED_MESSAGE, SEAL_KEY_MISMATCH, Finding
from services.integrity.monitor import IntegrityMonitor
from services.integrity.observe import see_stream
from services.integrity.records import SUBJECT, findings_json, sealed_event
from events.subjects import STREAM
from services.nats.streams import ensure_ledger_stream


class AcceptRefused(RuntimeError):
    """Nothing was accepted (no reason given, or a forged message that `ledger restore` must remove)."""


@dataclass
class AcceptReport:
    findings: list[Finding]
    after: list[Finding] = field(default_factory=list)
    acceptance_id: int | None = None           # None: there was nothing to accept
    lost_events: int = 0
    event_seq: int | None = None


async def accept_loss(pool: Any, js: Any, seal_key: bytes, reason: str, *, replicas: int | None = None,
                      now: Any = lambda: dt.datetime.now(dt.timezone.utc)) -> AcceptReport:
    if not reason or not reason.strip():
        raise AcceptRefused("say why the loss is accepted: --reason")
    monitor = IntegrityMonitor(pool, js, seal_key, replicas=replicas)
    report = AcceptReport(await monitor.check_all())
    if not report.findings:
        return report
    if any(f.code == SEAL_KEY_MISMATCH for f in report.findings):
        raise AcceptRefused("this process has another seal key than the ledger's: set LEDGER_SEAL_SECRET")
    forged = [f for f in report.findings if f.code == FORGED_MESSAGE]
    if forged:
        raise AcceptRefused(f"{len(forged)} forged message(s) (first at sequence {forged[0].seq}): a forgery is not "
                            "a loss; `ledger restore` puts the stream back without it")
    _, seen = await see_stream(js)
    if not seen.exists:
        await ensure_ledger_stream(js, replicas=replicas)
        _, seen = await see_stream(js)
    whole = any(f.whole_stream for f in report.findings)
    persons = sorted({f.person_key for f in report.findings if f.person_key})
    tables = [t.name for p in PROJECTIONS.values() for t in p.tables]
    async with pool.acquire() as conn, conn.transaction():
        await conn.fetch("SELECT projection FROM projection_checkpoint ORDER BY projection FOR UPDATE")
        before = await baseline_of(conn)
        report.acceptance_id = await conn.fetchval(
            "INSERT INTO integrity_acceptance (stream, reason, findings, stream_created_before, stream_created_after, "
            "high_water_before, last_seq, lost_events) VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, 0) RETURNING id",
            STREAM, reason.strip(), findings_json(report.findings), before.stream_created if before else None,
            seen.created, before.high_water if before else 0, seen.last_seq)
        status = await conn.execute(
            "INSERT INTO integrity_lost_event SELECT $1, e.* FROM ledger_event e WHERE $2 OR e.person_key = ANY($3)",
            report.acceptance_id, whole, persons)
        report.lost_events = int(status.rsplit(" ", 1)[1])
        await conn.execute(f"TRUNCATE {', '.join(tables)}")
        await conn.execute("UPDATE projection_checkpoint SET seq = 0, generation = generation + 1, "
                           "owner = 'accept-loss', updated_at = now()")
        await conn.execute(
            "INSERT INTO integrity_baseline (stream, stream_created, high_water, epoch, seal_key_id) "
            "VALUES ($1, $2, $3, 1, $4) ON CONFLICT (stream) DO UPDATE SET stream_created = EXCLUDED.stream_created, "
            "high_water = EXCLUDED.high_water, epoch = integrity_baseline.epoch + 1, unrestored = NULL, "
            "holding = NULL, seal_key_id = EXCLUDED.seal_key_id, updated_at = now()",
            STREAM, seen.created, seen.last_seq, seal_key_id(seal_key))
        await conn.execute("UPDATE integrity_acceptance SET lost_events = $2 WHERE id = $1",
                           report.acceptance_id, report.lost_events)
    event = ev.LossAccepted(
        event_id=f"loss-accepted-{report.acceptance_id}", correlation_id="ledger accept-loss", recorded_at=now(),
        reason=reason.strip(), findings=sorted({f.code for f in report.findings}),
        stream_created_before=before.stream_created.isoformat() if before else None,
        high_water_before=before.high_water if before else 0, last_seq=seen.last_seq)
    ack = await js.publish(SUBJECT, sealed_event(seal_key, event))
    report.event_seq = ack.seq
    async with pool.acquire() as conn:
        await conn.execute("UPDATE integrity_acceptance SET event_seq = $2 WHERE id = $1", report.acceptance_id, ack.seq)
    monitor.persons.clear()
    report.after = await monitor.check_all()
    monitor.settle()
    await monitor.publish()                      # the new epoch: adjudicators drop caches and decide again
    return report
