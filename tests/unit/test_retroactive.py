"""Qinghai 五(一) retroactive identity: expenditure_poverty recognised on begndate assists stays discharged in
[begndate − 180 days, begndate) (policy.md §5, §9, §11): adjustments right after the identity result,
大病 not re-decided, max(0, new − paid) within the cap. Stays discharged on or after begndate that were decided
before the recognition arrived are decided again in full (policy.md §12; tests/unit/test_late_status.py).

Every stay below: total = in_scope 20,000, basic 10,000 → oop 10,000, no status when decided.
2022-07-01 − 180 days = 2022-01-02.
"""
from __future__ import annotations

import pytest

from builders import QINGHAI, cancel, enrolment, grant, identity, qinghai_medins, stay
from harness import D


def qh_stay(setl_id, enddate, psn_no="P"):
    return stay(setl_id, psn_no, total="20000", in_scope="20000", hifp="10000", admdvs=QINGHAI, enddate=enddate)


def recognised(on="2022-07-01", psn_no="P"):
    return identity(psn_no, "expenditure_poverty", admdvs=QINGHAI, begndate=on, source_dept="民政", doc_no="ZC-1")


@pytest.fixture
def qh(ledger):
    """S1 2022-01-01 (181 days before: outside): oop 10,000, 大病 0 (B 10,000 < 12,000), r 10,000.
    S2 2022-01-02 (180 days: inside): B 10,000 → 大病 0.80 × 8,000 = 6,400; r 3,600; assistance base before 10,000.
    S3 2022-06-30 (inside): 大病 0.80 × 10,000 = 8,000; r 2,000; base before 13,600.
    S4 2022-07-01 (the recognition day: outside the look-back window, but covered by the status from its
    begndate, and decided before the identity came: decided again, policy.md §12)."""
    ledger.send(qinghai_medins(), enrolment("P", admdvs=QINGHAI))
    for setl_id, day in (("S1", "2022-01-01"), ("S2", "2022-01-02"), ("S3", "2022-06-30"), ("S4", "2022-07-01")):
        r = ledger.one(qh_stay(setl_id, day))
        assert r["status"] is None and D(r["maf_pay"]) == 0
    return ledger


def test_qinghai_5_1_retroactive_adjustments_follow_the_identity_result(qh):
    """S2: 0.50 × (max(0, 13,600 − 6,000) − max(0, 10,000 − 6,000)) = 0.50 × 3,600 = 1,800.00.
    S3: 0.50 × 2,000 = 1,000.00. S1 is outside [2022-01-02, 2022-07-01).
    S4 (discharged on begndate, policy.md §12): 大病 as before 0.80 × 10,000 = 8,000 (no tilt for
    expenditure_poverty); r 2,000; base before 10,000 + 3,600 + 2,000 = 15,600 > 6,000: 0.50 × 2,000 = 1,000.00."""
    out = qh.send(recognised())
    assert out[0]["msg_type"] == "identity_result"
    assert out[0]["result"] == "recorded"
    assert out[0]["adjustments"] == out[1:]          # integration.md §2: the reply carries them whole
    assert [(a["msg_type"], a["setl_id"], D(a["maf_pay"]), D(a["hifmi_pay"])) for a in out[1:]] == [
        ("settlement_adjustment", "S2", D("1800.00"), 0), ("settlement_adjustment", "S3", D("1000.00"), 0),
        ("settlement_adjustment", "S4", D("1000.00"), 0)]
    assert "五(一)" in out[1]["reason"] and "§12" in out[3]["reason"]
    assert out[1]["lines"][0]["rule_id"] == "qinghai.inpatient.expenditure_poverty"
    assert (D(out[3]["cap"]["used"]), D(out[3]["cap"]["limit"])) == (D("3800.00"), D("20000"))
    assert qh.year("P").assistance_cap_used == D("3800.00")


def test_qinghai_5_1_critical_illness_is_not_re_decided(qh):
    """大病 paid before: 0 + 6,400 + 8,000 + 8,000 = 22,400; unchanged by the recognition."""
    before = qh.year("P").ci_paid
    qh.send(recognised())
    assert before == qh.year("P").ci_paid == D("22400.00")
    assert qh.year("P").ci_base == D("40000")


def test_qinghai_5_1_later_stays_use_the_status_normally(qh):
    """After recognition, S5: B 40,000 → 大病 0.80 × 10,000 = 8,000; r 2,000; base before 17,600 > 6,000:
    0.50 × 2,000 = 1,000.00."""
    qh.send(recognised())
    r = qh.one(qh_stay("S5", "2022-08-01"))
    assert (r["status"], D(r["maf_pay"])) == ("expenditure_poverty", D("1000.00"))


def test_qinghai_5_1_retroactive_payment_respects_the_cap(qh):
    """A tilted grant of 19,500 leaves 500 of the 20,000 cap: S2 gets min(1,800, 500) = 500.00, S3, S4 nothing."""
    qh.one(grant("G1", "P", "19500"))
    out = qh.send(recognised())
    assert len(out[0]["adjustments"]) == 1 and len(out) == 2
    assert (out[1]["setl_id"], D(out[1]["maf_pay"])) == ("S2", D("500.00"))
    assert qh.year("P").assistance_cap_used == D("20000.00")


def test_qinghai_5_1_pays_only_what_is_missing(ledger):
    """A stay already assisted as low_income (0.60 × (10,000 − 2,500) = 4,500) owes nothing more under
    expenditure_poverty (0.50 × 4,000 = 2,000): max(0, new − paid) = 0, no adjustment, nothing taken back."""
    ledger.send(qinghai_medins(), enrolment("P", admdvs=QINGHAI),
                identity("P", "low_income", admdvs=QINGHAI, begndate="2022-01-01"))
    assert D(ledger.one(qh_stay("S1", "2022-03-01"))["maf_pay"]) == D("4500.00")
    out = ledger.send(recognised())
    assert out[0]["adjustments"] == [] and len(out) == 1
    assert ledger.year("P").assistance_cap_used == D("4500.00")


def test_qinghai_5_1_cancelled_stays_are_not_assisted(qh):
    from builders import cancel
    qh.one(cancel("S2", "P"))
    out = qh.send(recognised())
    assert [a["setl_id"] for a in out[1:]] == ["S3", "S4"]


def test_other_statuses_do_not_look_back(qh):
    """Only expenditure_poverty (青海 五(一)) looks back: low_income recognised 2022-07-01 assists none of
    S1–S3; it re-decides S4, discharged on its begndate (policy.md §12): base before 15,600 > 2,500:
    0.60 × 2,000 = 1,200.00."""
    out = qh.send(identity("P", "low_income", admdvs=QINGHAI, begndate="2022-07-01"))
    assert [(a["setl_id"], D(a["maf_pay"])) for a in out[1:]] == [("S4", D("1200.00"))]


def test_the_same_recognition_twice_pays_once(qh):
    qh.send(recognised())
    again = qh.send(recognised())
    assert [(r["msg_type"], r["result"]) for r in again] == [("identity_result", "duplicate")]
    assert qh.year("P").assistance_cap_used == D("3800.00")


def test_qinghai_5_1_a_cancelled_earlier_stay_leaves_the_base(ledger):
    """policy.md §9: cumulative bases run in decision order and 'a cancellation takes its amounts back out'.
    S1 remaining 10,000 (大病 0), S2 oop 3,600 → 大病 0.80 × (13,600 − 12,000) = 1,280, remaining 2,320.
    S1 cancelled, then expenditure_poverty recognised: S2's base before is 0, not 10,000:
    0.50 × (max(0, 2,320 − 6,000) − 0) = 0 → no adjustment (the engine used to pay 0.50 × 2,320 = 1,160)."""
    ledger.send(qinghai_medins(), enrolment("P", admdvs=QINGHAI))
    ledger.one(stay("S1", "P", total="20000", in_scope="20000", hifp="10000", admdvs=QINGHAI, enddate="2022-03-01"))
    s2 = ledger.one(stay("S2", "P", total="13600", in_scope="13600", hifp="10000", admdvs=QINGHAI, enddate="2022-04-01"))
    assert (s2["hifmi_pay"], s2["psn_part_amt"]) == ("1280.00", "2320.00")
    ledger.one(cancel("S1", "P"))
    out = ledger.send(recognised())
    assert out[0]["adjustments"] == [] and len(out) == 1
    assert ledger.year("P").assistance_cap_used == 0
