"""psn_no stays out of subjects, metric labels and the read models' keys, after a whole feed (ADR 0015).

The feed goes in over `platform.in.*` to a running ledger, the projector folds it into PostgreSQL, and
an audit job runs for one person. Then every key and index column of every table, every subject of the
stream and every metric label is searched for each psn_no of the feed; any other column may hold one
only where ADR 0015 says why.
"""
from __future__ import annotations

import asyncio
import re

from ledger_support import SEAL_SECRET, Collector, running_ledger
from readside_helpers import project_until
from events import samples as s
from services.adjudicator.service import peek
from services.audit.job import AuditRequest, start_audit
from events.subjects import STREAM

# (table, column) that hold a psn_no by design; each is explained in docs/adr/0015-pii.md.
HOLDS_PSN_NO = {
    ("ledger_event", "payload"),     # the audit trail: the events as stored, which name the person
    ("dead_letter", "raw"),          # the bytes as received, kept to re-drive them
    ("dead_letter_redrive", "results"),   # a re-drive's results, which carry psn_no by contract
    ("ledger_commit", "results"),    # each commit's results as stored, so `ledger restore` puts it back whole
}

_KEY_COLUMNS = """
SELECT c.relname AS table_name, a.attname AS column_name
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
WHERE n.nspname = 'public'"""


async def test_no_psn_no_in_keys_subjects_or_metric_labels(env, fresh_platform_nc, tmp_path) -> None:
    lines = s.mixed_feed(persons=8, settlements=40, prefix="PIIFEED")
    persons = {p for p in (peek(line)[1] for line in lines) if p and len(p) >= 8}
    assert len(persons) >= 8
    async with running_ledger(env.nats_url, tmp_path) as ledger:
        out = await Collector().start(fresh_platform_nc)          # results, as the platform reads them
        for i, line in enumerate(lines):
            msg_type = peek(line)[0] or ""
            token = msg_type if re.fullmatch(r"[a-z_]+", msg_type) else "unknown"
            await fresh_platform_nc.jetstream().publish(f"platform.in.{token}", line,
                                                        headers={"Nats-Msg-Id": f"pii-{i}"})
        await out.wait_for(lambda msgs: {m.headers.get("Ledger-Msg-Id") for m in msgs} >= {
            f"pii-{i}" for i in range(len(lines))}, timeout=90)
        metrics = ledger.metrics.render().decode()
        one = sorted(persons)[0]
        last = (await env.js.stream_info(STREAM)).state.last_seq
        await project_until(env.dsn, env.pool, env.js, last, seal_key=SEAL_SECRET.encode())
        job_id = await start_audit(env.pool, env.js, ledger.person_key, AuditRequest(psn_no=one))
        for _ in range(200):
            if await env.pool.fetchval("SELECT status FROM audit_job WHERE id = $1", job_id) in ("done", "failed"):
                break
            await asyncio.sleep(0.05)
        assert await env.pool.fetchval("SELECT status FROM audit_job WHERE id = $1", job_id) == "done"

    labels = re.findall(r"\{([^}]*)\}", metrics)
    assert labels and "ledger_messages_total" in metrics
    subjects = {m.subject for m in out.msgs}
    stream = await env.js.stream_info(STREAM, subjects_filter=">")
    subjects |= set(stream.state.subjects or {})
    assert any(x.startswith("ledger.person.") for x in subjects)
    for psn in persons:
        assert not any(psn in label for label in labels), psn
        assert not any(psn in subject for subject in subjects), psn

    keys = {(r["table_name"], r["column_name"]) for r in await env.pool.fetch(_KEY_COLUMNS)}
    columns = [(r["table_name"], r["column_name"]) for r in await env.pool.fetch(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'")]
    assert ("ledger_event", "person_key") in keys and ("settlement", "setl_id") in keys
    holding = set()
    for table, column in columns:
        values = await env.pool.fetch(f'SELECT "{column}"::text AS v FROM "{table}" WHERE "{column}" IS NOT NULL')
        texts = [bytes.fromhex(r["v"][2:]).decode("utf-8", "replace") if r["v"].startswith("\\x") else r["v"]
                 for r in values]
        if any(psn in text for text in texts for psn in persons):
            holding.add((table, column))
    assert not holding & keys, holding & keys                    # never a key or an index
    assert holding <= HOLDS_PSN_NO, holding - HOLDS_PSN_NO        # elsewhere only where the ADR says why
    assert ("ledger_event", "payload") in holding and ("dead_letter", "raw") in holding
