"""policy.md §12, the smaller readings, and integration.md §2/§4 round 2: each worked by hand."""
from __future__ import annotations

import re

from builders import (QINGHAI, cancel, enrolment, grant, identity, medins, qinghai_medins, raw, stay)
from events import codes
from harness import D, Ledger, balanced, line, with_income
from services.compose.core import build_handler

TWO_DECIMALS = re.compile(r"^-?\d+\.\d\d$")


def test_qinghai_7_2_stable_out_of_poverty_may_use_the_green_channel(ledger):
    """青海 七(二): 过渡期内稳定脱贫人口 enrol all year through the green channel; no subsidy, no assistance, no tilt."""
    ledger.send(qinghai_medins(), identity("P", "stable_out_of_poverty", admdvs=QINGHAI, begndate="2022-01-01"))
    r = ledger.one(enrolment("P", admdvs=QINGHAI, in_normal_period=False, enrol_date="2022-08-01"))
    assert (r["result"], r["status"], r["subsidy"]) == ("settled", "stable_out_of_poverty", "0.00")
    assert "七(二)" in r["reason"]["message"]
    # 大病 at base terms 0.80 × (20,000 − 12,000) = 6,400; no assistance.
    s = ledger.one(stay("S1", "P", total="30000", in_scope="30000", hifp="10000", admdvs=QINGHAI))
    assert (s["hifmi_pay"], s["maf_pay"], s["cap"]) == ("6400.00", "0.00", None)
    assert line(s, "qinghai.ci.base")


def test_others_outside_the_normal_period_are_still_refused(ledger):
    r = ledger.one(enrolment("P", admdvs=QINGHAI, in_normal_period=False))
    assert r["reason"]["code"] == codes.OUTSIDE_GREEN_CHANNEL


def test_linfen_2_4_2_cap_shows_the_10000_that_binds_low_income_applicant(ledger):
    """S1: oop 30,000; 大病 0.60 × 20,000 = 12,000; remaining 18,000 < 20,000: nothing.
    S2: oop 30,000; 大病 0.60 × 30,000 = 18,000; remaining 12,000; base 30,000 − 20,000 = 10,000 × 0.40 =
    4,000.00. `cap` shows the 1万 counter: limit 10,000.00, used 4,000.00, remaining 6,000.00."""
    ledger.send(medins(), enrolment("P"), identity("P", "low_income_applicant"))
    first = ledger.one(stay("S1", "P", total="50000", in_scope="50000", hifp="20000", enddate="2022-03-10"))
    assert first["cap"] == {"limit": "10000.00", "used": "0.00", "remaining": "10000.00"}
    r = ledger.one(stay("S2", "P", total="50000", in_scope="50000", hifp="20000", enddate="2022-04-10"))
    assert D(line(r, "linfen.inpatient.low_income_applicant")["amount"]) == D("4000.00")
    assert r["cap"] == {"limit": "10000.00", "used": "4000.00", "remaining": "6000.00"}


def test_linfen_2_4_3_gaucher_pompe_line_for_a_patient_with_no_status(ledger):
    """临汾 二(四)3 特殊病患者 with no status: 大病 0.60 × (20,000 − 10,000) = 6,000; remaining 14,000;
    0.70 × 14,000 = 9,800.00 within its own 60,000. No shared cap applies: `cap` null."""
    ledger.send(medins(), enrolment("P"))
    r = ledger.one(stay("S1", "P", total="30000", in_scope="30000", hifp="10000", dise="E75.2"))
    assert (r["status"], r["hifmi_pay"], r["maf_pay"], r["psn_part_amt"]) == (None, "6000.00", "9800.00", "4200.00")
    assert line(r, "linfen.inpatient.gaucher_pompe")["clause"].startswith("临汾 二(四)3")
    assert r["cap"] is None and balanced(r)
    assert ledger.year("P").own_used["linfen.inpatient.gaucher_pompe"] == D("9800.00")


def test_linfen_3_3_warning_counts_stays_at_non_designated_hospitals(ledger):
    """临汾 三(三) watches the burden: remaining 7,000 at a non-designated hospital > 25% × 27,426 = 6,856.50.
    No assistance there (policy.md §12), but the warning is raised."""
    ledger.send(medins("LF-ND", designated=False), enrolment("P"))
    r = ledger.one(stay("S1", "P", total="17000", in_scope="17000", hifp="10000", hospital="LF-ND"))
    assert (r["maf_pay"], r["warnings"]) == ("0.00", ["high_self_pay"])
    assert ledger.year("P").assist_base == 0 and ledger.year("P").inpatient_remaining == D("7000.00")


def test_an_identity_ending_before_it_begins_is_invalid_dates(ledger):
    r = ledger.one(identity("P", "dibao", begndate="2022-06-01", enddate="2022-05-31"))
    assert (r["result"], r["reason"]["code"]) == ("rejected", codes.INVALID_DATES)
    assert ledger.store.commits[-1][1].events[0].code == codes.INVALID_DATES      # a dead letter


def test_a_tilted_grant_needs_an_enrolment_for_its_year(ledger):
    r = ledger.one(grant("G1", "P", "1000"))
    assert (r["result"], r["reason"]["code"]) == ("rejected", codes.NOT_ENROLLED)


def test_a_duplicate_of_a_cancelled_settlement_says_so(ledger):
    """integration.md §2: `"cancelled": true` and its `cancel_time`, with the original figures."""
    ledger.send(medins(), enrolment("P"))
    first = ledger.one(stay("S1", "P", total="30000", in_scope="30000", hifp="10000"))
    assert first["cancelled"] is False and first["cancel_time"] is None
    ledger.one(cancel("S1", "P", cancel_time="2022-12-01T10:00:00+08:00"))
    dup = ledger.one(stay("S1", "P", total="30000", in_scope="30000", hifp="10000"))
    assert (dup["result"], dup["cancelled"], dup["cancel_time"]) == ("duplicate", True, "2022-12-01T10:00:00+08:00")
    assert dup["hifmi_pay"] == first["hifmi_pay"]


def _money_strings(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _money_strings(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _money_strings(v, f"{path}[{i}]")
    elif isinstance(obj, str) and re.fullmatch(r"-?\d+\.\d+", obj):
        yield path, obj


def test_every_money_string_has_two_decimals(ledger):
    """returned_poverty at a class-I hospital: the 85% line's base is the control share 0.30 × 10,000 =
    3,000.0000 exactly, shown "3000.00"; caps, bases and amounts all have two decimals (ratios aside)."""
    ledger.send(medins(), enrolment("P"), identity("P", "returned_poverty"))
    r = ledger.one(stay("S1", "P", total="10000", ooc="4000", in_scope="6000", hifp="3000"))
    assert line(r, "linfen.inpatient.returned_poverty_ooc")["base"] == "3000.00"
    for path, value in _money_strings(r):
        if not path.endswith(".ratio"):
            assert TWO_DECIMALS.match(value), (path, value)


def test_missing_parameter_is_never_a_silent_zero_and_a_re_drive_pays(ledger):
    """临汾 三(三) at_risk in 2023: the pack has no 2022 income figure for 2023 (上年度全省居民人均可支配收入).
    Rejected `missing_parameter` naming it and the year, kept as a dead letter; once the pack is extended
    (27,000 → threshold 6,750), the same bytes pay 0.70 × (10,000 − 6,750) = 2,275.00."""
    ledger.send(medins(), enrolment("P", year=2023, std="380"), identity("P", "at_risk", begndate="2023-01-01"))
    bad = stay("S1", "P", total="10000", in_scope="10000", hifp="0", enddate="2023-03-10")
    r = ledger.one(bad)
    assert (r["result"], r["reason"]["code"]) == ("rejected", codes.MISSING_PARAMETER)
    assert "prev_year_income" in r["reason"]["message"] and "2023" in r["reason"]["message"]
    dead = ledger.store.commits[-1][1].events[0]
    assert (dead.code, dead.raw) == (codes.MISSING_PARAMETER, raw(bad))
    extended = build_handler(with_income(2023, "27000"), ledger.store, clock=ledger.handler.clock)
    again = Ledger.__new__(Ledger)
    again.handler, again.store = extended, ledger.store
    paid = again.one(bad)
    # 大病 0.60 × (10,000 − 10,000) = 0 (no tilt for at_risk): remaining 10,000.
    assert (paid["result"], paid["maf_pay"]) == ("settled", "2275.00")


def test_missing_income_for_the_warning_is_refused_too():
    """Any Linfen inpatient stay of 2023 needs the 三(三) warning threshold: refused, never unwatched."""
    ledger = Ledger()
    ledger.send(medins(), enrolment("P", year=2023, std="380"))
    r = ledger.one(stay("S1", "P", total="10000", in_scope="10000", hifp="5000", enddate="2023-03-10"))
    assert r["reason"]["code"] == codes.MISSING_PARAMETER
    ok = Ledger(with_income(2023, "27000"))
    ok.send(medins(), enrolment("P", year=2023, std="380"))
    assert ok.one(stay("S1", "P", total="10000", in_scope="10000", hifp="5000", enddate="2023-03-10"))["result"] == "settled"
