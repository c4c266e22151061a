"""Commits written in an older shape, on a real stream, read back through every reader of the ledger.

The old shapes are the ones the ledger really wrote before: flat settlement facts (tags
`hospital_stay_settled` / `outpatient_visit_settled`, the settlement's and the hospital's fields copied
next to the figures, ADR 0017), without `after_year_close` and `ci_deductible` (both added later), and
identity/year-close results whose `adjustments` was a count. They are sealed and chained as the stores seal
them, so every reader takes them; each must then give today's value (ADR 0010, issue 13). Decisions made
after them on the same stream (a late status, a duplicate, a cancel, the year end) read the old facts, and
answer as they would over today's shapes. With the upcasters switched off, the readers refuse them.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from events import ledger as ev
from events import samples as s
from events.chain import commit_seal
from events.envelope import LedgerEvent
from events.results import IdentityResult, YearCloseResult
from events.upcast import UPCASTERS, decode_commit
from projections.decode import LeanDecoder, decode_message
from projections.lean_claims import NEEDS
from projections.rebuild import rebuild
from projections.sample import decided, stored_commit
from projections.verify import verify_stream
from readside_helpers import SEAL_KEY, SECRET, project_until, read_tables
from services.audit.job import AuditRequest, run_audit
from services.cli.replay import replay_handler
from services.compose.core import build_handler
from services.nats.store import JetStreamStore
from services.policy.pack import PackSet
from services.runtime.secrets import person_key

PSN = s.psn_no_of(1, "OLD")
COUNTED = ("identity_result", "year_close_result")         # results whose `adjustments` was a count
FLAT_TAG = {"hospital_stay_settled_v2": "hospital_stay_settled",
            "outpatient_visit_settled_v2": "outpatient_visit_settled"}
ENVELOPE = [f.name for f in msgspec.structs.fields(LedgerEvent)]
# The flat facts' fields in the order the ledger wrote them (before `after_year_close`, `ci_deductible`).
FLAT_FIELDS = (
    "setl_id", "mdtrt_id", "psn_no", "admdvs", "year", "insutype", "med_type", "chronic_mgmt", "special_drug",
    "fixmedins_code", "designated", "in_province", "ooc_class", "serious_disease_designated", "begndate",
    "enddate", "setl_time", "dise_codg", "medfee_sumamt", "fulamt_ownpay_amt", "inscp_scp_amt", "hifp_pay",
    "oth_pay", "status", "oop", "remaining", "ci_base_before", "ci_base_added", "assist_base_before",
    "assist_base_added", "quota_base", "hifmi_pay", "maf_pay", "hosp_part_amt", "psn_part_amt")
_JSON = msgspec.json.Encoder()


def _messages() -> list[bytes]:
    """The history stored in the old shapes: three settlements (two stays, a quota visit) and a close of
    another area (nothing due: its result's `adjustments` was 0)."""
    return [s.dumps(m) for m in (s.medins(), s.identity(PSN), s.enrolment(PSN),
                                 s.settlement("OLD-1", PSN, total="60000.00"),
                                 s.settlement("OLD-2", PSN, total="30000.00", day="2022-05-10"),
                                 s.settlement("OLD-3", PSN, total="3000.00", ooc="0", day="2022-06-01",
                                              med_type="14", chronic_mgmt="quota"),
                                 {"msg_type": "year_close", "admdvs": "630000", "year": s.YEAR})]


def _later() -> list[bytes]:
    """Decided after the old history, reading its facts: a late status re-decides the three, a repeat gets
    the stored answer, a cancel reverses, the area's year end pays the quota visit."""
    return [s.dumps(m) for m in (s.identity(PSN, "tekun", doc_no="LATE"),
                                 s.settlement("OLD-1", PSN, total="60000.00"), s.cancel("OLD-2", PSN),
                                 {"msg_type": "year_close", "admdvs": "141000", "year": s.YEAR})]


def _flat(event: dict[str, Any]) -> dict[str, Any]:
    """Today's facts as the ledger wrote them before ADR 0017: one flat object, the old tag."""
    merged = {**event, **event["settlement"], **event["hospital"]}
    return {"type": FLAT_TAG[event["type"]], **{k: event[k] for k in ENVELOPE}, **{k: merged[k] for k in FLAT_FIELDS}}


def _old_shape(subject: str, data: bytes, rehashed: dict[str, str]) -> bytes:
    """The commit as the ledger wrote it then: its events' JSON in the old shapes, hashed and chained again
    over the bytes as stored, and sealed under the ledger's key (what a store does)."""
    raw = msgspec.json.decode(data)
    events, hashes = [], []
    for event in raw["events"]:
        if event["type"] in FLAT_TAG:
            event = _flat(event)
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


async def _old_commits() -> list[tuple[str, bytes]]:
    store = await decided(_messages())
    rehashed: dict[str, str] = {}
    out = []
    for psn, commit in store.commits:
        subject, data = stored_commit(psn, commit, SECRET, SEAL_KEY)
        old = _old_shape(subject, data, rehashed)
        assert b"ci_deductible" not in old and b'"adjustments":[' not in old and b"_settled_v2" not in old
        out.append((subject, old))
    assert sum(b'"hospital_stay_settled"' in d or b'"outpatient_visit_settled"' in d for _, d in out) == 3
    return out


async def _publish_old(js: Any) -> int:
    last = 0
    for subject, old in await _old_commits():
        last = (await js.publish(subject, old)).seq
    return last


async def _answers_over_today_shapes() -> list[bytes]:
    """What the later messages get after the same history in today's shapes (memory store)."""
    handler = replay_handler(PackSet.from_dir())
    for raw in _messages():
        await handler.handle(raw, source="test")
    return [_JSON.encode(await handler.handle(raw, source="test")) for raw in _later()]


def _assert_old_read_as_today(commits: list[ev.Commit]) -> None:
    facts = [e for c in commits for e in c.events if isinstance(e, ev.SettlementFacts)]
    assert [f.setl_id for f in facts] == ["OLD-1", "OLD-2", "OLD-3"]
    assert all(f.ci_deductible is None and f.after_year_close is False and f.settlement.setl_id == f.setl_id
               and f.settlement.psn_no == PSN and f.hospital.designated for f in facts)
    assert [type(f) for f in facts] == [ev.HospitalStaySettled, ev.HospitalStaySettled, ev.OutpatientVisitSettled]
    assert facts[2].settlement.chronic_mgmt == "quota" and facts[2].quota_base > 0
    counted = [r for c in commits for r in c.results if isinstance(r, (IdentityResult, YearCloseResult))]
    assert len(counted) == 2 and all(r.adjustments == [] for r in counted)


async def test_an_old_shape_reads_as_today_through_every_reader(env) -> None:
    old_last = await _publish_old(env.js)
    key = person_key(SECRET, PSN)
    stored = await env.js.get_last_msg("LEDGER", f"ledger.person.{key}")
    assert stored.data and decode_commit(stored.data)

    # The JetStream store: the person's read (sealed, chained, folded) and the reference follower; then the
    # one decision path over it decides after the old history as it would after today's shapes.
    jet = JetStreamStore(env.js, SECRET, seal_key=SEAL_KEY)
    await jet.start()
    try:
        person = await jet.person(PSN)
        assert set(person.settlements) == {"OLD-1", "OLD-2", "OLD-3"} and "dibao" in person.statuses
        assert all(r.facts.ci_deductible is None and r.facts.after_year_close is False
                   and r.result is not None for r in person.settlements.values())
        reference = await jet.reference(refresh=True)
        assert [y for _, y in reference.closed_years] == [s.YEAR] and s.HOSPITALS[0] in reference.hospitals
        handler = build_handler(PackSet.from_dir(), jet)
        answers = [_JSON.encode(await handler.handle(raw, source="test")) for raw in _later()]
        after = await jet.person(PSN)
    finally:
        await jet.close()
    assert answers == await _answers_over_today_shapes()
    granted, repeat, cancelled, closed = (msgspec.json.decode(a)[0] for a in answers)
    assert [a["setl_id"] for a in granted["adjustments"]] == ["OLD-1", "OLD-2"]
    assert repeat["result"] == "duplicate" and Decimal(cancelled["maf_pay"]) > 0
    assert [a["setl_id"] for a in closed["adjustments"]] == ["OLD-3"] and after.settlements["OLD-2"].cancelled
    last = (await env.js.stream_info("LEDGER")).state.last_seq
    assert last > old_last

    # The decoder itself, over what is on the stream: today's types, with the upcast values.
    every = []
    for seq in range(1, last + 1):
        every.append(decode_commit((await env.js.get_msg("LEDGER", seq)).data))
    _assert_old_read_as_today(every[:old_last])
    assert not any(isinstance(e, ev.SettlementFacts) for c in every[old_last:] for e in c.events)

    # The projector, live: the read models fold the old facts (deductible from the 大病 payment instead).
    await project_until(env.dsn, env.pool, env.js, last)
    live = await read_tables(env.pool)
    rows = {r["setl_id"]: r for r in live["settlement"].values()}
    assert set(rows) == {"OLD-1", "OLD-2", "OLD-3"} and rows["OLD-2"]["cancelled"]
    assert (rows["OLD-3"]["med_type"], rows["OLD-1"]["fixmedins_code"]) == ("14", s.HOSPITALS[0])
    usage = next(iter(live["person_year"].values()))
    paid = [e for c in every for e in c.events if isinstance(e, ev.CriticalIllnessPaid)]
    assert paid and usage["ci_deductible"] == paid[-1].deductible.normalize()

    # `ledger rebuild` (in process here, as the CLI below) gives the same tables from the same bytes: the
    # lean decoder reads the flat facts and the embedding ones alike.
    summary = await rebuild(env.dsn, env.pool, env.js, seal_key=SEAL_KEY)
    assert summary.seq == last and await read_tables(env.pool) == live

    # `ledger verify`: every commit, old and new, is sealed and chained (over the bytes as stored).
    report = await verify_stream(env.js, seal_key=SEAL_KEY)
    assert report.ok and report.messages == last and report.persons == 1

    # The audit replays every commit under its pack and finds what was stored.
    outcome = await run_audit(env.js, [key], AuditRequest(psn_no=PSN))
    assert outcome.differences == [] and outcome.totals["compared"] >= 8

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


async def test_without_the_flat_facts_upcaster_every_reader_refuses_them(monkeypatch) -> None:
    """The test above passes because of the upcaster, not because some reader tolerates the old shape."""
    old = [(subject, data) for subject, data in await _old_commits() if b'_settled"' in data]
    for tag in FLAT_TAG.values():
        monkeypatch.delitem(UPCASTERS, tag)
    lean = LeanDecoder(NEEDS)
    for seq, (subject, data) in enumerate(old, 1):
        with pytest.raises(msgspec.ValidationError):
            decode_commit(data)
        with pytest.raises(msgspec.ValidationError):
            decode_message(seq, subject, data, SEAL_KEY)
        with pytest.raises(msgspec.ValidationError):
            lean.message(seq, subject, data, SEAL_KEY)
    monkeypatch.undo()
    assert all(decode_message(seq, subject, data, SEAL_KEY).events for seq, (subject, data) in enumerate(old, 1))
