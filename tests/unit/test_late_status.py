"""A status recognised late re-decides the stays it covers (policy.md §12), figures worked by hand.

Linfen: base 大病 D 10,000, 60%, cap 300,000; dibao tilt (二(三)) D 5,000, 80%, no cap; dibao assistance
70% of `remaining` (二(四)1) within the shared 60,000; at_risk 70% of the cumulative `remaining` above
25% × 27,426 = 6,856.50 (三(三)).
"""
from __future__ import annotations

import pytest

from builders import cancel, enrolment, identity, medins, stay
from harness import D, Ledger, balanced


@pytest.fixture
def lf(ledger):
    ledger.send(medins(), enrolment("P"))
    return ledger


def s1(**kw):
    """Discharged 2022-08-05: in scope 40,000, basic 24,000 → oop 16,000."""
    return stay("S1", "P", total="40000", in_scope="40000", hifp="24000", enddate="2022-08-05", **kw)


def s2():
    """Discharged 2022-09-01: in scope 20,000, basic 12,000 → oop 8,000."""
    return stay("S2", "P", total="20000", in_scope="20000", hifp="12000", enddate="2022-09-01")


def test_a_dibao_granted_from_1_august_arriving_10_august_pays_the_5_august_stay(lf):
    """S1 with no status: 大病 0.60 × (16,000 − 10,000) = 3,600; remaining 12,400; psn 12,400.
    As dibao: 大病 0.80 × (16,000 − 5,000) = 8,800; remaining 7,200; assistance 0.70 × 7,200 = 5,040.
    Adjustment: hifmi_pay 8,800 − 3,600 = 5,200.00, maf_pay 5,040.00; the person now pays 2,160.00."""
    first = lf.one(s1())
    assert (first["status"], first["hifmi_pay"], first["maf_pay"], first["psn_part_amt"]) == (
        None, "3600.00", "0.00", "12400.00")
    out = lf.send(identity("P", "dibao", begndate="2022-08-01"))
    assert [r["msg_type"] for r in out] == ["identity_result", "settlement_adjustment"]
    adj = out[1]
    assert out[0]["adjustments"] == [adj]
    assert (adj["setl_id"], adj["hifmi_pay"], adj["maf_pay"]) == ("S1", "5200.00", "5040.00")
    assert [(l["fund"], l["rule_id"], l["base"], l["amount"]) for l in adj["lines"]] == [
        ("critical_illness", "linfen.ci.tilt.tekun_dibao_returned", "16000.00", "5200.00"),
        ("assistance", "linfen.inpatient.dibao", "7200.00", "5040.00")]
    assert "§12" in adj["reason"]
    assert adj["cap"] == {"limit": "60000.00", "used": "5040.00", "remaining": "54960.00"}
    y = lf.year("P")
    assert (y.ci_paid, y.assistance_cap_used, y.assist_base) == (D("8800.00"), D("5040.00"), D("7200.00"))
    assert lf.person("P").settlements["S1"].owed() == D("2160.00")


def test_stays_are_decided_again_in_their_order_with_the_cumulative_bases(lf):
    """S2 no status: 大病 0.60 × (max(0, 24,000 − 10,000) − max(0, 16,000 − 10,000)) = 4,800.
    Re-decided after S1 as dibao: 0.80 × (19,000 − 11,000) = 6,400; remaining 1,600; 0.70 × 1,600 = 1,120.
    Adjustments: S1 (5,200, 5,040), S2 (1,600, 1,120); cap used 6,160; assistance base 7,200 + 1,600."""
    lf.send(s1(), s2())
    out = lf.send(identity("P", "dibao", begndate="2022-08-01"))
    assert [(a["setl_id"], a["hifmi_pay"], a["maf_pay"]) for a in out[1:]] == [
        ("S1", "5200.00", "5040.00"), ("S2", "1600.00", "1120.00")]
    assert out[2]["cap"]["used"] == "6160.00"
    y = lf.year("P")
    assert (y.ci_paid, y.assistance_cap_used, y.assist_base) == (D("15200.00"), D("6160.00"), D("8800.00"))


def test_the_same_figures_as_a_status_known_in_advance(lf):
    """Sent before the stays, dibao gives S1 8,800 / 5,040 and S2 6,400 / 1,120: the same totals."""
    early = Ledger()
    early.send(medins(), enrolment("P"), identity("P", "dibao", begndate="2022-08-01"))
    r1, r2 = early.one(s1()), early.one(s2())
    assert [(r["hifmi_pay"], r["maf_pay"]) for r in (r1, r2)] == [("8800.00", "5040.00"), ("6400.00", "1120.00")]
    lf.send(s1(), s2(), identity("P", "dibao", begndate="2022-08-01"))
    a, b = lf.year("P"), early.year("P")
    assert (a.ci_paid, a.assistance_cap_used, a.assist_base) == (b.ci_paid, b.assistance_cap_used, b.assist_base)


def test_stays_outside_the_span_are_not_decided_again(lf):
    """dibao valid 2022-08-01 .. 2022-08-31 covers S1 only; a stay of 2022-07-20 is before it."""
    lf.one(stay("S0", "P", total="12000", in_scope="12000", hifp="6000", enddate="2022-07-20"))
    lf.send(s1(), s2())
    out = lf.send(identity("P", "dibao", begndate="2022-08-01", enddate="2022-08-31"))
    assert [a["setl_id"] for a in out[1:]] == ["S1"]


def test_a_threshold_status_re_decided_on_the_running_base(lf):
    """at_risk (no 大病 tilt): S1 remaining 12,400, base before 0: 0.70 × (12,400 − 6,856.50) = 3,880.45;
    S2 remaining 3,200, base before 12,400 (> 6,856.50): 0.70 × 3,200 = 2,240.00. 大病 unchanged."""
    lf.send(s1(), s2())
    out = lf.send(identity("P", "at_risk", begndate="2022-01-01"))
    assert [(a["setl_id"], a["hifmi_pay"], a["maf_pay"]) for a in out[1:]] == [
        ("S1", "0.00", "3880.45"), ("S2", "0.00", "2240.00")]
    assert [l["fund"] for l in out[1]["lines"]] == ["assistance"]


def test_nothing_is_taken_back_and_nothing_paid_twice(lf):
    """The same recognition again is a duplicate; a second status that gives less pays nothing more."""
    lf.send(s1(), identity("P", "dibao", begndate="2022-08-01"))
    again = lf.send(identity("P", "dibao", begndate="2022-08-01"))
    assert [r["result"] for r in again] == ["duplicate"]
    later = lf.send(identity("P", "at_risk", begndate="2022-01-01"))
    assert later[0]["adjustments"] == [] and len(later) == 1
    assert lf.year("P").assistance_cap_used == D("5040.00")


def test_a_cancelled_stay_is_not_decided_again_and_a_re_decided_one_cancels_whole(lf):
    """S1 cancelled before the grant: nothing for it. S2 re-decided, then cancelled: every payment of S2,
    the adjustment included, is reversed, and the counters return to where S1 alone left them (none)."""
    lf.send(s1(), s2(), cancel("S1", "P"))
    out = lf.send(identity("P", "dibao", begndate="2022-08-01"))
    assert [a["setl_id"] for a in out[1:]] == ["S2"]
    # S2 was paid 大病 4,800 while S1 still counted; re-decided without S1 (B before 0) as dibao:
    # 大病 0.80 × (8,000 − 5,000) = 2,400 < 4,800 paid (nothing taken back); remaining 5,600;
    # 0.70 × 5,600 = 3,920, but the person owes only 20,000 − 12,000 − 4,800 = 3,200: 3,200.00.
    assert (out[1]["hifmi_pay"], out[1]["maf_pay"]) == ("0.00", "3200.00")
    assert lf.person("P").settlements["S2"].owed() == 0
    c = lf.one(cancel("S2", "P"))
    assert (c["hifmi_pay"], c["maf_pay"]) == ("4800.00", "3200.00")
    y = lf.year("P")
    assert (y.ci_paid, y.assistance_cap_used, y.assist_base, y.ci_base, y.burden) == (0, 0, 0, 0, 0)


def test_adjustments_stay_within_the_cap_as_it_stands_now(lf):
    """Two stays of oop 300,000 each (basic 0). As dibao: S1 大病 0.80 × 295,000 = 236,000, remaining 64,000,
    0.70 × 64,000 = 44,800; S2 大病 0.80 × 300,000 = 240,000, remaining 60,000, 0.70 × 60,000 = 42,000 but
    only 60,000 − 44,800 = 15,200 left: the adjustments pay 60,000 in all, never more."""
    for i in (1, 2):
        lf.one(stay(f"S{i}", "P", total="300000", in_scope="300000", hifp="0", enddate=f"2022-0{i + 7}-05"))
    out = lf.send(identity("P", "dibao", begndate="2022-08-01"))
    assert [a["maf_pay"] for a in out[1:]] == ["44800.00", "15200.00"]
    assert lf.year("P").assistance_cap_used == D("60000.00")
    assert out[-1]["cap"]["remaining"] == "0.00"


def test_a_duplicate_after_re_decision_keeps_the_original_figures(lf):
    """integration.md §2: asking again returns the stored result with its original figures."""
    lf.send(s1(), identity("P", "dibao", begndate="2022-08-01"))
    dup = lf.one(s1())
    assert (dup["result"], dup["hifmi_pay"], dup["maf_pay"], dup["status"]) == ("duplicate", "3600.00", "0.00", None)
    assert balanced(dup)
