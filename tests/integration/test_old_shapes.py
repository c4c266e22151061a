"""Commits written in an older shape, on a real stream, read back through every reader of the ledger.

The old shapes are the ones the ledger really wrote before: settlement facts without `after_year_close`
and `ci_deductible` (both added later), and identity/year-close results whose `adjustments` was a count
(the registered result upcaster in events/upcast.py). They are sealed and chained as the stores seal them,
so every reader takes them; each must then give today's value (ADR 0010, issue 13).
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from decimal import Decimal
from typing import Any

import msgspec

from events import ledger as ev
from events import samples as s
from events.chain import commit_seal
from events.results import IdentityResult, YearCloseResult
from events.upcast import decode_commit
from projections.rebuild import rebuild
from projections.sample import decided, stored_commit
from projections.verify import verify_stream
from readside_helpers import SEAL_KEY, SECRET, project_until, read_tables
from services.audit.job import AuditRequest, run_audit
from services.nats.store import JetStreamStore
from services.runtime.secrets import person_key

PSN = s.psn_no_of(1, "OLD")
LATER_FACTS = ("after_year_close", "ci_deductible")        # SettlementFacts fields added later
COUNTED = ("identity_result", "year_close_result")         # results whose `adjustments` was a count
_JSON = msgspec.json.Encoder()


def _messages() -> list[bytes]:
    return [s.dumps(m) for m in (s.medins(), s.identity(PSN), s.enrolment(PSN),
                                 s.settlement("OLD-1", PSN, total="60000.00"),
                                 s.settlement("OLD-2", PSN, total="30000.00", day="2022-05-10"),
                                 {"msg_type": "year_close", "admdvs": s.AREA, "year": s.YEAR})]


def _old_shape(subject: str, data: bytes, rehashed: dict[str, str]) -> bytes:
    """The commit as the ledger wrote it before those fields: its events' JSON without them, hashed and
    chained again over the bytes as stored, and sealed under the ledger's key (what a store does)."""
    raw = msgspec.json.decode(data)
    events, hashes = [], []
    for event in raw["events"]:
        for name in LATER_FACTS if event["type"] in ("hospital_stay_settled", "outpatient_visit_settled") else ():
            event.pop(name, None)
        event["prev_hash"] = rehashed.get(event["prev_hash"], event["prev_hash"])
        old_hash, event["hash"] = event["hash"], ""
        canonical = _JSON.encode(event)
        new_hash = hashlib.sha256(canonical).hexdigest()
        rehashed[old_hash] = new_hash
        hashes.append(new_hash)
        events.append(msgspec.Raw(canonical.replace(b'"hash":""', b'"hash":"' + new_hash.encode() + b'"', 1)))
    results = [{**r, "adjustments": len(r.get("adjustments") or [])} if r["msg_type"] in COUNTED else r
               for r in raw["results"]]
    results_raw = msgspec.Raw(_JSON.encode(results))
    seal = commit_seal(SEAL_KEY, subject, raw["commit_id"], hashes, results_raw)
    return _JSON.encode({"commit_id": raw["commit_id"], "correlation_id": raw["correlation_id"],
                         "events": events, "results": results_raw, "seal": seal})


async def _publish_old(js: Any) -> tuple[Any, int]:
    store = await decided(_messages())
    rehashed: dict[str, str] = {}
    last = 0
    for psn, commit in store.commits:
        subject, data = stored_commit(psn, commit, SECRET, SEAL_KEY)
        old = _old_shape(subject, data, rehashed)
        assert b"ci_deductible" not in old and b'"adjustments":[' not in old
        last = (await js.publish(subject, old)).seq
    return store, last


def _assert_old_read_as_today(commits: list[ev.Commit]) -> None:
    facts = [e for c in commits for e in c.events if isinstance(e, ev.SettlementFacts)]
    assert len(facts) == 2 and all(f.ci_deductible is None and f.after_year_close is False for f in facts)
    counted = [r for c in commits for r in c.results if isinstance(r, (IdentityResult, YearCloseResult))]
    assert len(counted) == 2 and all(r.adjustments == [] for r in counted)


async def test_an_old_shape_reads_as_today_through_every_reader(env) -> None:
    store, last = await _publish_old(env.js)
    key = person_key(SECRET, PSN)
    stored = await env.js.get_last_msg("LEDGER", f"ledger.person.{key}")
    assert stored.data and decode_commit(stored.data)

    # The JetStream store: the person's read (sealed, chained, folded) and the reference follower.
    jet = JetStreamStore(env.js, SECRET, seal_key=SEAL_KEY)
    await jet.start()
    try:
        person = await jet.person(PSN)
        assert set(person.settlements) == {"OLD-1", "OLD-2"} and "dibao" in person.statuses
        assert all(r.facts.ci_deductible is None and r.facts.after_year_close is False
                   and r.result is not None for r in person.settlements.values())
        reference = await jet.reference(refresh=True)
        assert [y for _, y in reference.closed_years] == [s.YEAR] and s.HOSPITALS[0] in reference.hospitals
    finally:
        await jet.close()

    # The decoder itself, over what is on the stream: today's types, with the upcast values.
    every = []
    for seq in range(1, last + 1):
        every.append(decode_commit((await env.js.get_msg("LEDGER", seq)).data))
    _assert_old_read_as_today(every)

    # The projector, live: the read models fold the old facts (deductible from the 大病 payment instead).
    await project_until(env.dsn, env.pool, env.js, last)
    live = await read_tables(env.pool)
    assert {r["setl_id"] for r in live["settlement"].values()} == {"OLD-1", "OLD-2"}
    usage = next(iter(live["person_year"].values()))
    paid = [e for _, c in store.commits for e in c.events if isinstance(e, ev.CriticalIllnessPaid)]
    assert paid and usage["ci_deductible"] == paid[-1].deductible.normalize()

    # `ledger rebuild` (in process here, as the CLI below) gives the same tables from the same old bytes.
    summary = await rebuild(env.dsn, env.pool, env.js, seal_key=SEAL_KEY)
    assert summary.seq == last and await read_tables(env.pool) == live

    # `ledger verify`: every old commit is sealed and chained.
    report = await verify_stream(env.js, seal_key=SEAL_KEY)
    assert report.ok and report.messages == last and report.persons == 1

    # The audit replays the old commits under their pack and finds what was stored.
    outcome = await run_audit(env.js, [key], AuditRequest(psn_no=PSN))
    assert outcome.differences == [] and outcome.totals["compared"] >= 4

    environ = {**os.environ, "NATS_URL": env.nats_url, "DATABASE_URL": env.dsn,
               "LEDGER_PERSON_KEY_SECRET": SECRET.decode(), "LEDGER_SEAL_SECRET": SEAL_KEY.decode()}
    for args in (("verify", "--json"), ("rebuild", "--json"), ("audit", "--psn-no", PSN, "--json")):
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.cli.main", *args, env=environ,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode == 0, (args, err.decode()[-2000:])
        answer = msgspec.json.decode(out)
        assert answer.get("ok", True) and answer.get("differences", []) == [], answer
    assert await read_tables(env.pool) == live
    assert Decimal(usage["ci_deductible"]) > 0
