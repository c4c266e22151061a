"""Audit replay and chain verification against a real stream."""
from __future__ import annotations

import datetime as dt
import itertools
import json
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from events import ledger as ev
from events.chain import encode_sealed, event_hash
from services.compose.core import build_handler
from services.memory.store import MemoryStore
from services.audit.job import AuditRequest, run_audit
from services.audit.packs import PackLibrary
from services.policy.pack import DEFAULT_PACK_DIR, PackSet
from services.runtime.secrets import person_key
from projections.verify import verify_person, verify_stream
from readside_helpers import SEAL_KEY, SECRET, publish

LINFEN = (DEFAULT_PACK_DIR / "linfen-2022.toml").read_text(encoding="utf-8")
BASE_CI = 'deductible = "10000"\nratio = "0.60"'
PERSONS = ["LF-A", "LF-B", "LF-C"]


def _msgs() -> list[bytes]:
    out = [{"msg_type": "medins", "fixmedins_code": "H1", "fixmedins_name": "H1", "admdvs": "141002",
            "designated": True, "in_province": True, "ooc_class": None, "serious_disease_designated": False}]
    for n, psn in enumerate(PERSONS):
        out.append({"msg_type": "enrolment", "psn_no": psn, "admdvs": "141002", "brdy": "1970-01-01", "year": 2022,
                    "insutype": "390", "contribution_std": "320", "enrol_date": "2022-01-05",
                    "in_normal_period": True})
        for k, total in enumerate((30000 + 5000 * n, 22000)):
            out.append({"msg_type": "settlement", "setl_id": f"{psn}-{k}", "mdtrt_id": f"M-{psn}-{k}",
                        "psn_no": psn, "admdvs": "141002", "insutype": "390", "med_type": "21",
                        "fixmedins_code": "H1", "begndate": f"2022-0{k + 3}-01", "enddate": f"2022-0{k + 3}-09",
                        "setl_time": f"2022-0{k + 3}-09T10:00:00+08:00", "dise_codg": "J18.9",
                        "medfee_sumamt": str(total), "fulamt_ownpay_amt": "0", "inscp_scp_amt": str(total),
                        "hifp_pay": str(total // 2)})
    return [json.dumps(m).encode() for m in out]


async def _decide(packs: PackSet) -> MemoryStore:
    """Decide the messages with a clock one day apart per message, so `as_of` can cut between them."""
    days = itertools.count()
    ids = itertools.count(1)
    start = dt.datetime(2022, 1, 1, tzinfo=dt.timezone.utc)
    handler = build_handler(packs, MemoryStore(), clock=lambda: start + dt.timedelta(days=next(days)),
                            new_id=lambda: f"t-{next(ids)}")
    for raw in _msgs():
        await handler.handle(raw)
    return handler.store


@pytest.fixture
def old_pack_dir(tmp_path: Path) -> Path:
    """linfen-2022 as it was before version 2022.1: 大病 paid 55%."""
    assert BASE_CI in LINFEN
    (tmp_path / "linfen-2021.toml").write_text(
        LINFEN.replace('version = "2022.1"', 'version = "2021.9"').replace(BASE_CI, BASE_CI.replace("0.60", "0.55")),
        encoding="utf-8")
    return tmp_path


def _keys() -> list[str]:
    return [person_key(SECRET, p) for p in PERSONS]


async def test_audit_under_the_old_pack_version_finds_no_difference(env, old_pack_dir: Path) -> None:
    old = PackLibrary.load([old_pack_dir]).versions[("linfen-2022", "2021.9")]
    store = await _decide(PackSet([old]))
    assert {e.pack_version for _, c in store.commits for e in c.events if e.pack} == {"2021.9"}
    await publish(env.js, store)

    outcome = await run_audit(env.js, _keys(), AuditRequest(area="1410", pack_dir=str(old_pack_dir)))
    assert outcome.differences == []
    assert outcome.totals["compared"] == len(PERSONS) * 3 and outcome.totals["paid"]["critical_illness"] > 0
    assert outcome.totals["paid"] == outcome.totals["recomputed"]

    # Without the archived version the audit says it cannot recompute, rather than use today's rules.
    missing = await run_audit(env.js, _keys()[:1], AuditRequest(psn_no=PERSONS[0]))
    assert {d.kind for d in missing.differences} == {"not_recomputed"}
    assert "2021.9" in missing.differences[0].note

    # As of the second day only the first person's enrolment had been recorded.
    early = await run_audit(env.js, _keys(), AuditRequest(area="1410", pack_dir=str(old_pack_dir),
                                                          as_of=dt.datetime(2022, 1, 2, tzinfo=dt.timezone.utc)))
    assert early.totals["commits"] == 1 and early.totals["skipped_after_as_of"] == len(PERSONS) * 3 - 1


async def test_what_if_a_changed_parameter_shows_the_expected_differences(env, old_pack_dir: Path) -> None:
    library = PackLibrary.load([old_pack_dir])
    store = await _decide(PackSet([library.versions[("linfen-2022", "2021.9")]]))
    await publish(env.js, store)
    what_if = {"linfen-2022": {"critical_illness.ratio": "0.70"}}
    changed = await _decide(PackSet([PackLibrary(list(library.versions.values()), overrides=what_if)
                                     .resolve("linfen-2022", "2021.9")]))

    def ci(s: MemoryStore) -> dict[str, Decimal]:
        return {e.setl_id: e.amount for _, c in s.commits for e in c.events if isinstance(e, ev.CriticalIllnessPaid)}

    expected = {k: ci(changed).get(k, Decimal(0)) - v for k, v in ci(store).items()}
    assert any(expected.values())
    outcome = await run_audit(env.js, _keys(), AuditRequest(area="1410", pack_dir=str(old_pack_dir),
                                                            overrides=what_if))
    lines = {d.key: d.delta for d in outcome.differences if d.kind == "line"}
    assert lines == {k: v for k, v in expected.items() if v}
    line = next(d for d in outcome.differences if d.kind == "line")
    assert (line.rule_id, line.fund, line.clause) == ("linfen.ci.base", "critical_illness", "临汾 二(三) 大病保险现行规定")
    totals = {d.key for d in outcome.differences if d.kind == "total" and d.field == "hifmi_pay"}
    assert totals == set(lines)
    assert outcome.totals["what_if"] is True


async def test_verify_reports_forged_and_broken_commits(env) -> None:
    store = await _decide(PackSet.from_dir())
    last = await publish(env.js, store)
    clean = await verify_stream(env.js, seal_key=SEAL_KEY)
    assert clean.ok and clean.messages == last and clean.persons == len(PERSONS)

    # A forger appends an event to LF-B whose hash fits, but cannot seal it: it is forged, whatever its hashes.
    psn, commit = next((p, c) for p, c in reversed(store.commits) if p == PERSONS[1])
    original = commit.events[0]
    assert isinstance(original, ev.SettlementFacts)
    forged = msgspec.structs.replace(original, setl_id="FORGED", event_id="forged:0", maf_pay=Decimal("9999.00"),
                                     prev_hash=commit.events[-1].hash, hash="")
    forged = msgspec.structs.replace(forged, hash=event_hash(forged))
    subject = f"ledger.person.{person_key(SECRET, psn)}"
    ack = await env.js.publish(subject, ev.COMMIT_ENCODER.encode(ev.Commit("forged", "forged", [forged])))
    # ... on LF-C, an event edited and sealed again by the ledger's own key (a writer's bug): the seal and
    # its hash hold, the chain does not ...
    psn_c, commit_c = next((p, c) for p, c in store.commits if p == PERSONS[2])
    edited = msgspec.structs.replace(commit_c.events[0], contribution_std=Decimal("1.00"))
    subject_c = f"ledger.person.{person_key(SECRET, psn_c)}"
    ack_c = await env.js.publish(subject_c, encode_sealed(SEAL_KEY, subject_c,
                                                          msgspec.structs.replace(commit_c, events=[edited])))
    # ... and on LF-A a commit the ledger sealed for LF-A's subject, copied onto it again under another seal key.
    psn_a, commit_a = next((p, c) for p, c in store.commits if p == PERSONS[0])
    subject_a = f"ledger.person.{person_key(SECRET, psn_a)}"
    ack_a = await env.js.publish(subject_a, encode_sealed(b"someone-else's-key-0123456789", subject_a, commit_a))

    report = await verify_stream(env.js, seal_key=SEAL_KEY)
    assert not report.ok and len(report.breaks) == 3
    one = await verify_person(env.js, person_key(SECRET, psn), seal_key=SEAL_KEY)   # the same, from one subject
    assert not one.ok and one.first_break == report.first_break and one.persons == 1
    first = report.first_break
    assert (first.subject, first.seq, first.reason) == (subject, ack.seq, "forged: no seal")
    assert first.person_key == person_key(SECRET, psn)
    second = report.breaks[1]
    assert second.seq == ack_c.seq and second.reason == "previous hash does not match" and second.hash_ok
    third = report.breaks[2]
    assert (third.seq, third.reason) == (ack_a.seq, "forged: seal does not match")


async def test_a_reference_commit_without_the_seal_is_a_break(env) -> None:
    store = await _decide(PackSet.from_dir())
    await publish(env.js, store)
    medins = next(c for p, c in store.commits if p is None)
    ack = await env.js.publish("ledger.ref.medins", ev.COMMIT_ENCODER.encode(medins))
    report = await verify_stream(env.js, seal_key=SEAL_KEY)
    assert not report.ok and [(b.subject, b.seq, b.reason) for b in report.breaks] == [
        ("ledger.ref.medins", ack.seq, "forged: no seal")]


async def test_cli_verify_rebuild_audit(env, old_pack_dir: Path) -> None:
    """`ledger verify`, `ledger rebuild` and `ledger audit` as a supervisor runs them (JSON on stdout)."""
    import asyncio
    import os
    import sys

    store = await _decide(PackSet.from_dir())
    last = await publish(env.js, store)
    environ = {**os.environ, "NATS_URL": env.nats_url, "DATABASE_URL": env.dsn,
               "LEDGER_PERSON_KEY_SECRET": SECRET.decode(), "LEDGER_SEAL_SECRET": SEAL_KEY.decode()}

    async def ledger(*args: str) -> tuple[int, dict]:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.cli.main", *args, env=environ,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        return proc.returncode, json.loads(out) if out.strip() else {"stderr": err.decode()}

    code, report = await ledger("verify", "--json")
    assert code == 0 and report["ok"] and report["last_seq"] == last
    code, report = await ledger("verify", "--psn-no", PERSONS[0], "--json")
    assert code == 0 and report["ok"] and report["persons"] == 1 and report["events"] > 0
    code, summary = await ledger("rebuild", "--json", "--workers", "2")
    assert code == 0 and summary["seq"] == last and summary["workers"] == 2
    assert await env.pool.fetchval("SELECT count(*) FROM settlement") == len(PERSONS) * 2
    code, outcome = await ledger("audit", "--psn-no", PERSONS[0], "--json")
    assert code == 0 and outcome["differences"] == [] and outcome["totals"]["compared"] == 3
    code, outcome = await ledger("audit", "--area", "1410", "--set", "linfen-2022:critical_illness.ratio=0.7",
                                 "--json")
    assert code == 1 and {d["rule_id"] for d in outcome["differences"] if d["kind"] == "line"} == {"linfen.ci.base"}
    code, _ = await ledger("audit", "--area", "1410", "--set", "linfen-2022:no.such=1")
    assert code == 2
