"""The read models' folds without a database: they agree with the engine's own state, and the
row operations merge the way the SQL writer sends them."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from events import ledger as ev
from projections.catalog import PROJECTIONS, select
from projections.decode import decode_message
from projections.model import MemoryTables, Upsert
from projections.sample import decided, stored_commit, traffic
from projections.sql import plan, upsert_sql
from projections.usage import PERSON_YEAR
from services.audit.packs import PackLibrary, override
from services.policy.pack import PackError, PackSet
from services.runtime.secrets import person_key

SECRET = b"fold-test-secret-0123456789abcdef"
SEAL_KEY = b"fold-test-seal-key-0123456789abc"


@pytest.fixture(scope="module")
def folded():
    store = asyncio.run(decided(traffic(400, seed=5)))
    msgs = [decode_message(i, *stored_commit(p, c, SECRET, SEAL_KEY), SEAL_KEY)
            for i, (p, c) in enumerate(store.commits, 1)]
    model = MemoryTables()
    for projection in PROJECTIONS.values():
        state = projection.new_state()
        for msg in msgs:
            model.apply(projection.fold(state, msg))
    return store, msgs, model


def test_person_year_counters_equal_the_engine_state(folded) -> None:
    store, _, model = folded
    years = model.rows("person_year")
    rules = model.rows("person_year_rule")
    checked = 0
    for psn_no, person in store.persons.items():
        key = person_key(SECRET, psn_no)
        for year, y in person.years.items():
            row = years[(key, year)]
            assert (row["ci_base"], row["ci_paid"], row["assist_base"], row["cap_used"]) == (
                y.ci_base, y.ci_paid, y.assist_base, y.assistance_cap_used)
            mine = {k[2]: r["amount"] for k, r in rules.items() if k[:2] == (key, year) and r["amount"]}
            assert mine == {k: v for k, v in y.rule_totals.items() if v}
            checked += 1
    assert checked == len(store.persons)


def test_settlement_rows_and_money_add_up(folded) -> None:
    store, msgs, model = folded
    settlements = model.rows("settlement")
    lines = model.rows("settlement_line").values()
    assert len(settlements) == sum(len(p.settlements) for p in store.persons.values())
    for (setl_id, _), row in settlements.items():
        paid = sum((l["amount"] for l in lines if l["setl_id"] == setl_id and l["kind"] == "payment"
                    and l["fund"] == "assistance"), Decimal(0))
        assert paid == row["maf_pay"]
        if row["cancelled"]:
            assert sum((l["amount"] for l in lines if l["setl_id"] == setl_id), Decimal(0)) == 0
    flows = sum((r["amount"] for r in model.rows("fund_flow").values()), Decimal(0))
    assert flows == sum((l["amount"] for l in lines), Decimal(0)) + sum(
        (r["subsidy"] + r["grants_granted"] for r in model.rows("person_year").values()), Decimal(0))
    assert len(model.rows("ledger_event")) == sum(len(m.events) for m in msgs)
    assert len(model.rows("dead_letter")) == 8                       # every 50th of 400 persons sent a bad one


def test_upserts_merge_per_row_and_send_one_statement_per_shape() -> None:
    ops = [Upsert(PERSON_YEAR, ("k", 2022), add={"settlements": 1}, set={"status_applied": "dibao"}),
           Upsert(PERSON_YEAR, ("k", 2022), add={"settlements": 1, "ci_paid": Decimal("5")},
                  set={"status_applied": None})]
    inserts, statements = plan(ops)
    assert not inserts and len(statements) == 1
    ((table, add, put), rows), = statements.items()
    assert (add, put) == (tuple(sorted(PERSON_YEAR.additive)), ("status_applied",))   # padded: few shapes
    values = dict(zip(("person_key", "year", *add, *put), rows[0]))
    assert (values["ci_paid"], values["settlements"], values["subsidy"], values["status_applied"]) == (
        Decimal("5"), 2, 0, None)
    sql = upsert_sql("public", table, add, put)
    assert 'ON CONFLICT ("person_key", "year") DO UPDATE' in sql and '"ci_paid" = t."ci_paid" + EXCLUDED."ci_paid"' in sql
    model = MemoryTables()
    model.apply(ops)
    row = model.rows("person_year")[("k", 2022)]
    assert (row["settlements"], row["ci_paid"], row["status_applied"]) == (2, Decimal("5"), None)


def test_select_names_projections() -> None:
    assert [p.name for p in select(None)] == list(PROJECTIONS)
    with pytest.raises(ValueError, match="unknown projection"):
        select(["nope"])


def test_pack_overrides_are_validated_like_pack_files() -> None:
    linfen = PackSet.from_dir().by_id["linfen-2022"]
    changed = override(linfen, {"critical_illness.ratio": "0.65", "inpatient[linfen.inpatient.dibao].ratio": "0.8"})
    assert changed.critical_illness.ratio == Decimal("0.65") and changed.version == "2022.1+whatif"
    assert next(r for r in changed.inpatient if r.rule_id == "linfen.inpatient.dibao").ratio == Decimal("0.8")
    for bad in ({"critical_illness.nope": "1"}, {"inpatient[missing].ratio": "1"}, {"critical_illness.ratio": "x"}):
        with pytest.raises(PackError):
            override(linfen, bad)
    with pytest.raises(PackError, match="unknown pack"):
        PackLibrary(list(PackSet.from_dir().packs), overrides={"atlantis-2022": {"shared_cap": "1"}})


def test_the_deductible_is_projected_from_the_events_not_from_todays_pack() -> None:
    """policy.md §4: the person-year shows the 大病 deductible its decisions used — Linfen base 10,000 for a
    stay with no status that paid no 大病 (oop 6,000 < 10,000), and the dibao tilt 5,000 once dibao is
    recognised late and the stay decided again (policy.md §12). No pack is read by the projection."""
    import json
    lines = [json.dumps(m).encode() for m in (
        {"msg_type": "medins", "fixmedins_code": "H1", "fixmedins_name": "H1", "admdvs": "141002",
         "designated": True, "in_province": True, "ooc_class": None, "serious_disease_designated": False},
        {"msg_type": "enrolment", "psn_no": "D1", "admdvs": "141002", "brdy": "1970-01-01", "year": 2022,
         "insutype": "390", "contribution_std": "320", "enrol_date": "2022-01-05", "in_normal_period": True},
        {"msg_type": "settlement", "setl_id": "S1", "mdtrt_id": "M1", "psn_no": "D1", "admdvs": "141002",
         "insutype": "390", "med_type": "21", "fixmedins_code": "H1", "begndate": "2022-03-01",
         "enddate": "2022-03-05", "setl_time": "2022-03-05T10:00:00+08:00", "dise_codg": "K35.9",
         "medfee_sumamt": "10000", "fulamt_ownpay_amt": "0", "inscp_scp_amt": "10000", "hifp_pay": "4000"})]
    late = json.dumps({"msg_type": "psn_identity", "psn_no": "D1", "admdvs": "141002", "status": "dibao",
                       "action": "grant", "begndate": "2022-01-01", "source_dept": "民政", "doc_no": "L1"}).encode()

    def deductible(messages) -> Decimal:
        store = asyncio.run(decided(messages))
        model = MemoryTables()
        projection = PROJECTIONS["claims"]
        state = projection.new_state()
        for i, (p, c) in enumerate(store.commits, 1):
            model.apply(projection.fold(state, decode_message(i, *stored_commit(p, c, SECRET, SEAL_KEY), SEAL_KEY)))
        return model.rows("person_year")[(person_key(SECRET, "D1"), 2022)]["ci_deductible"]

    assert deductible(lines) == Decimal("10000")
    assert deductible([*lines, late]) == Decimal("5000.0")        # 大病 0.80 × (6,000 − 5,000) = 800 paid late


def test_the_running_totals_events_carry_agree_with_the_fold(folded) -> None:
    """ADR 0004 (rebuilds): the person-year figures the events state before them — 大病 and assistance bases
    at each settlement, 大病 paid before a first decision, the shared cap used before each line or grant —
    are the fold's own running totals. 大病 paid on a re-decision is not (`redecide.py` states the
    simulated year's figure), so the fold keeps adding figures rather than taking them from events."""
    _, msgs, _ = folded
    model = MemoryTables()
    projection = PROJECTIONS["claims"]
    state = projection.new_state()
    checked = 0
    for msg in msgs:
        running: dict[int, dict] = {}
        for e in msg.events:
            if msg.person_key is None or not hasattr(e, "year"):
                continue
            row = model.rows("person_year").get((msg.person_key, e.year)) or {}
            now = running.setdefault(e.year, {k: Decimal(row.get(k) or 0) for k in (
                "ci_base", "assist_base", "ci_paid", "cap_used")})
            if isinstance(e, ev.SettlementFacts):
                assert (now["ci_base"], now["assist_base"]) == (e.ci_base_before, e.assist_base_before)
                now["ci_base"] += e.ci_base_added
                now["assist_base"] += e.assist_base_added
            elif isinstance(e, ev.CriticalIllnessPaid):
                assert e.adjustment or now["ci_paid"] == e.paid_before
                now["ci_paid"] += e.amount
            elif isinstance(e, ev.AssistancePaid) and e.counter == "shared":
                assert now["cap_used"] == e.cap_used_before
                now["cap_used"] += e.amount
            elif isinstance(e, ev.TiltedGrantPaid):
                assert now["cap_used"] == e.cap_used_before
                now["cap_used"] += e.granted
            else:
                continue
            checked += 1
        model.apply(projection.fold(state, msg))
    assert checked > 1000
