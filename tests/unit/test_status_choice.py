"""policy.md §9 and §11: one status per settlement, 就高不就低, ties to the first listed, "no status" loses ties."""
from __future__ import annotations

import pytest

from builders import QINGHAI, enrolment, identity, medins, qinghai_medins, stay


@pytest.fixture
def lf(ledger):
    ledger.send(medins("LF-ND", designated=False), medins(), enrolment("P"))
    return ledger


@pytest.fixture
def qh(ledger):
    ledger.send(qinghai_medins(), enrolment("P", admdvs=QINGHAI))
    return ledger


def test_the_status_leaving_the_lowest_psn_part_wins_even_when_listed_later(lf):
    """青海 四(三) 就高不就低 as §9 reads it. severe_disability (listed first) vs at_risk, oop 50,000:
    severe_disability: 大病 0.78 × (50,000 − 5,000) = 35,100; r 14,900; no Linfen assistance line → psn 14,900.
    at_risk: 大病 base 0.60 × 40,000 = 24,000; r 26,000; 0.70 × (26,000 − 6,856.50) = 13,400.45;
             psn 26,000 − 13,400.45 = 12,599.55 < 14,900 → at_risk, with base 大病 terms (one status for all)."""
    lf.send(identity("P", "severe_disability"), identity("P", "at_risk"))
    r = lf.one(stay("S1", "P", total="60000", in_scope="60000", hifp="10000"))
    assert r["status"] == "at_risk"
    assert (r["hifmi_pay"], r["maf_pay"], r["psn_part_amt"]) == ("24000.00", "13400.45", "12599.55")
    assert r["lines"][0]["rule_id"] == "linfen.ci.base"


def test_the_status_listed_first_wins_when_it_is_better(lf):
    """Same two statuses, oop 20,000: severe_disability 大病 0.78 × 15,000 = 11,700 → psn 8,300;
    at_risk 大病 0.60 × 10,000 = 6,000, r 14,000, 0.70 × 7,143.50 = 5,000.45 → psn 8,999.55 → severe_disability."""
    lf.send(identity("P", "at_risk"), identity("P", "severe_disability"))
    r = lf.one(stay("S1", "P", total="30000", in_scope="30000", hifp="10000"))
    assert (r["status"], r["psn_part_amt"]) == ("severe_disability", "8300.00")


def test_benefits_never_stack(qh):
    """青海 四(三): dibao (70%) and low_income (60% above 2,500) do not add up. r 10,000 (大病 tilt 0.85 × 4,000
    = 3,400 for dibao → r 6,600 → 4,620; low_income: 大病 0, r 10,000 → 0.60 × 7,500 = 4,500; psn 1,980 vs
    5,500) → dibao, and only its line is paid."""
    qh.send(identity("P", "low_income", admdvs=QINGHAI), identity("P", "dibao", admdvs=QINGHAI))
    r = qh.one(stay("S1", "P", total="20000", in_scope="20000", hifp="10000", admdvs=QINGHAI))
    assert (r["status"], r["maf_pay"], r["psn_part_amt"]) == ("dibao", "4620.00", "1980.00")
    assert [l["rule_id"] for l in r["lines"]] == ["qinghai.ci.tilt.tekun_dibao_returned",
                                                  "qinghai.inpatient.dibao_disability_entitled"]


@pytest.mark.parametrize("statuses, expected", [
    (["low_income_elderly", "severe_disability"], "severe_disability"),   # same 大病 tilt; §2 lists severe first
    (["low_income_minor", "low_income_elderly"], "low_income_elderly"),
])
def test_tie_goes_to_the_status_listed_first(lf, statuses, expected):
    """policy.md §9: a tie goes to the status listed first in §2, whatever order the statuses arrived in."""
    lf.send(*(identity("P", s) for s in statuses))
    r = lf.one(stay("S1", "P", total="30000", in_scope="30000", hifp="10000", hospital="LF-ND"))
    assert r["status"] == expected


def test_qinghai_tie_between_statuses_of_one_rule(qh):
    """rural_at_risk and low_income share 四(二)'s 60% line: a tie, low_income is listed first."""
    qh.send(identity("P", "rural_at_risk", admdvs=QINGHAI), identity("P", "low_income", admdvs=QINGHAI))
    r = qh.one(stay("S1", "P", total="10000", in_scope="10000", hifp="6000", admdvs=QINGHAI))
    assert (r["status"], r["maf_pay"]) == ("low_income", "900.00")


def test_no_status_loses_ties(lf):
    """policy.md §11: stable_out_of_poverty gets nothing more than 'no status'; the tie goes to the status,
    and the result names it."""
    lf.one(identity("P", "stable_out_of_poverty"))
    r = lf.one(stay("S1", "P", total="30000", in_scope="30000", hifp="10000"))
    assert (r["status"], r["psn_part_amt"]) == ("stable_out_of_poverty", "14000.00")   # 20,000 − 0.60 × 10,000


def test_no_status_at_all(lf):
    r = lf.one(stay("S1", "P", total="30000", in_scope="30000", hifp="10000"))
    assert (r["status"], r["maf_pay"], r["cap"]) == (None, "0.00", None)


def test_status_validity_is_decided_by_the_discharge_date(lf):
    """policy.md §11: `enddate` decides. tekun valid 2022-03-05 .. 2022-03-08 does not cover a stay admitted
    2022-03-05 and discharged 2022-03-10; tekun from 2022-03-10 does — and, recognised after S1 was decided,
    decides S1 again (policy.md §12), while the earlier span [03-05, 03-08] re-decided nothing."""
    lf.one(identity("P", "tekun", begndate="2022-03-05", enddate="2022-03-08"))
    r1 = lf.one(stay("S1", "P", total="30000", in_scope="30000", hifp="10000", begndate="2022-03-05"))
    late = lf.send(identity("P", "tekun", begndate="2022-03-10"))
    assert [(r["msg_type"], r.get("setl_id")) for r in late] == [("identity_result", None),
                                                                  ("settlement_adjustment", "S1")]
    r2 = lf.one(stay("S2", "P", total="30000", in_scope="30000", hifp="10000", begndate="2022-03-05"))
    assert (r1["status"], r2["status"]) == (None, "tekun")


def test_revoke_ends_the_status_the_day_before(lf):
    """integration.md §1: a revoke ends the status on the day before its begndate; nothing paid is taken back."""
    lf.one(identity("P", "dibao", begndate="2021-01-01"))
    before = lf.one(stay("S1", "P", total="30000", in_scope="30000", hifp="10000", enddate="2022-05-31"))
    lf.one(identity("P", "dibao", action="revoke", begndate="2022-06-01", doc_no="MZ-REVOKE"))
    on_eve = lf.one(stay("S2", "P", total="1000", in_scope="1000", hifp="0", enddate="2022-05-31"))
    after = lf.one(stay("S3", "P", total="30000", in_scope="30000", hifp="10000", enddate="2022-06-01"))
    assert (before["status"], on_eve["status"], after["status"]) == ("dibao", "dibao", None)
    assert lf.year("P").rule_totals["linfen.inpatient.dibao"] > 0
