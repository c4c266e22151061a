"""`ledger restore`: stream LEDGER rebuilt from the read models' copy of every commit (ADR 0010).

The audit trail keeps each event as stored (`ledger_event.payload`) and each commit's envelope
(`ledger_commit`: results and seal), so every projected commit can be put back byte for byte: its
hash chain and seal verify as before, and a repeat of any key is answered `duplicate` with the
original figures. Sequences are kept: each message is published with
``Nats-Expected-Last-Sequence`` = its sequence − 1, so the checkpoints still count the same stream.

Steps: hold every adjudicator (a `restore_in_progress` finding, then `HOLD_FOR` seconds so every
guard has seen it); keep the old stream's messages after the copy if it is still the remembered
stream (its tail, in PostgreSQL, so a restore stopped half way loses nothing); delete the stream
(`drop_ledger_stream`, the one step that needs NATS admin rights); publish 1..copy from PostgreSQL
and then the tail; where there is no sealed commit to put back — a forged message, a sequence never
projected — a sealed `sequence_not_restored` marker on ``ledger.ref.integrity`` keeps the numbering;
then a `stream_restored` event. Last, one transaction moves the baseline to the new stream (epoch + 1)
and, when the stream once reached further than what could be put back, records that as
`unrestored_loss`, which only `ledger accept-loss` clears.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from nats.js.errors import NotFoundError

from events import ledger as ev
from events.chain import Unsealed, links_from, read_sealed, read_view, seal_key_id
from projections.decode import PERSON_PREFIX
from projections.source import StreamReader
from services.integrity.baseline import baseline_of
from services.integrity.findings import SEAL_KEY_MISMATCH, Finding
from services.integrity.monitor import IntegrityMonitor
from services.integrity.observe import see_stream
from services.integrity.records import SUBJECT, findings_json, sealed_event
from events.subjects import STREAM
from services.nats.streams import ensure_ledger_stream

HOLD_FOR = 3.0          # seconds: longer than an adjudicator's check (services/integrity/guard.py POLL_EVERY)
WINDOW = 256            # publishes in flight
PAGE = 1000             # sequences read from PostgreSQL at a time
EXPECTED_LAST_SEQ = "Nats-Expected-Last-Sequence"


class RestoreFailed(RuntimeError):
    """The restore stopped; the ledger stays held. Run it again."""


@dataclass
class RestoreReport:
    findings: list[Finding]                      # before
    after: list[Finding] = field(default_factory=list)
    restored_upto: int = 0
    from_read_models: int = 0
    from_old_stream: int = 0
    not_restored: int = 0
    unrestored: str | None = None
    stream_created: str | None = None
    seconds: float = 0.0
    done: bool = False                           # False: there was nothing to restore


class _Envelope(msgspec.Struct):
    """A commit as the stores encode it (events/ledger.py `Commit`), from its stored parts."""
    commit_id: str
    correlation_id: str
    events: list[msgspec.Raw]
    results: msgspec.Raw
    seal: str


_ENCODER = msgspec.json.Encoder()


async def drop_ledger_stream(js: Any, stream: str = STREAM) -> None:
    """Delete the stream. With NATS accounts only an admin may: pass that connection's JetStream context."""
    try:
        await js.delete_stream(stream)
    except NotFoundError:
        pass


async def restore(pool: Any, js: Any, seal_key: bytes, *, admin_js: Any = None, replicas: int | None = None,
                  hold_for: float = HOLD_FOR, force: bool = False, progress: Callable[[int, int], None] | None = None,
                  now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)) -> RestoreReport:
    started = time.perf_counter()
    monitor = IntegrityMonitor(pool, js, seal_key, replicas=replicas)
    report = RestoreReport(await monitor.check_all())
    if not report.findings and not force:
        return report
    if any(f.code == SEAL_KEY_MISMATCH for f in report.findings):
        raise RestoreFailed("this process has another seal key than the ledger's: every commit would look forged")
    async with pool.acquire() as conn:
        baseline = await baseline_of(conn)
        copy_upto = await conn.fetchval("SELECT seq FROM projection_checkpoint WHERE projection = 'audit_trail'") or 0
        if baseline is None or copy_upto == 0:
            raise RestoreFailed("the read models hold no copy of the stream to restore from")
        await conn.execute("UPDATE integrity_baseline SET holding = $2, updated_at = now() WHERE stream = $1",
                           STREAM, f"ledger restore started {now().isoformat()}")
    await monitor.check_stream()
    await monitor.publish()                      # every adjudicator holds from its next check
    await asyncio.sleep(hold_for)

    _, seen = await see_stream(js)
    same = seen.exists and seen.created == baseline.stream_created
    high_water = max(baseline.high_water, seen.last_seq if same else 0)
    if same and seen.last_seq > copy_upto:
        await _keep_tail(pool, js, seal_key, copy_upto, seen.last_seq)
    if seen.exists:
        await drop_ledger_stream(admin_js or js)
    info = await ensure_ledger_stream(admin_js or js, replicas=replicas)

    async def messages() -> AsyncIterator[tuple[int, str, bytes, str]]:
        async for item in _from_read_models(pool, seal_key, copy_upto):
            yield item
        async for item in _from_tail(pool, copy_upto):
            yield item

    last = 0
    pending: list[tuple[int, Any]] = []
    heads: dict[str, str] = {}                   # each person's chain as restored so far
    async for seq, subject, data, source in messages():
        if data and subject.startswith(PERSON_PREFIX):
            after = links_from([bytes(r) for r in read_view(data).events], heads.get(subject, ""))
            if after is None:
                data, source = b"", "does not continue the person's chain"    # a sealed commit published again
            else:
                heads[subject] = after
        if source == "read models":
            report.from_read_models += 1
        elif source == "old stream":
            report.from_old_stream += 1
        else:
            report.not_restored += 1
            data = sealed_event(seal_key, ev.SequenceNotRestored(
                event_id=f"not-restored-{seq}", correlation_id="ledger restore", recorded_at=now(), seq=seq,
                subject=subject, reason=source))
            subject = SUBJECT
        pending.append((seq, await js.publish_async(subject, data, headers={EXPECTED_LAST_SEQ: str(seq - 1)})))
        last = seq
        if len(pending) >= WINDOW:
            await _acked(pending)
            if progress is not None:
                progress(last, max(copy_upto, last))
    await _acked(pending)
    report.restored_upto = last
    if high_water > last:
        report.unrestored = (f"sequences {last + 1}-{high_water} of the stream created "
                             f"{baseline.stream_created.isoformat()} were in no copy: they are lost")
    done = sealed_event(seal_key, ev.StreamRestored(
        event_id=f"stream-restored-{info.created.isoformat()}", correlation_id="ledger restore", recorded_at=now(),
        source="read models", restored_upto=last, not_restored=report.not_restored,
        findings=sorted({f.code for f in report.findings})))
    await _acked([(last + 1, await js.publish_async(SUBJECT, done, headers={EXPECTED_LAST_SEQ: str(last)}))])

    unrestored = "; ".join(u for u in (baseline.unrestored, report.unrestored) if u) or None
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE integrity_baseline SET stream_created = $2, high_water = $3, epoch = epoch + 1, "
                           "unrestored = $4, holding = NULL, seal_key_id = $5, updated_at = now() WHERE stream = $1",
                           STREAM, info.created, last + 1, unrestored, seal_key_id(seal_key))
        await conn.execute("DELETE FROM forged_message WHERE seq <= $1", last)
        await conn.execute("DELETE FROM integrity_restore_tail")
        await conn.execute("INSERT INTO integrity_restore (stream, source, findings, restored_upto, not_restored, "
                           "unrestored) VALUES ($1, 'read models', $2::jsonb, $3, $4, $5)", STREAM,
                           findings_json(report.findings), last, report.not_restored, report.unrestored)
    monitor.persons.clear()
    report.after = await monitor.check_all()
    monitor.settle()
    await monitor.publish()                      # the new epoch: adjudicators drop caches and decide again
    report.stream_created, report.done = info.created.isoformat(), True
    report.seconds = round(time.perf_counter() - started, 3)
    return report


async def _acked(pending: list[tuple[int, Any]]) -> None:
    try:
        for seq, future in pending:
            ack = await asyncio.wait_for(future, 30)
            if ack.seq != seq:
                raise RestoreFailed(f"sequence {seq} landed at {ack.seq}")
    except RestoreFailed:
        raise
    except Exception as exc:
        raise RestoreFailed(f"publishing sequence {seq} failed ({exc!r}): did something else publish into the "
                            "new stream? The ledger stays held; run `ledger restore` again") from None
    finally:
        pending.clear()


async def _from_read_models(pool: Any, seal_key: bytes, upto: int) -> AsyncIterator[tuple[int, str, bytes, str]]:
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


async def _keep_tail(pool: Any, js: Any, seal_key: bytes, after: int, last: int) -> None:
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


async def _from_tail(pool: Any, after: int) -> AsyncIterator[tuple[int, str, bytes, str]]:
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
