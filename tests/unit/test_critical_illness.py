"""policy.md §4 大病保险: ratio × (max(0, B + oop − D) − max(0, B − D)) on the cumulative annual oop, within the cap.

Stays at a non-designated hospital isolate 大病: assistance is paid only at designated hospitals
(policy.md §1), 大病 everywhere.
"""
from __future__ import annotations

import pytest

from builders import QINGHAI, enrolment, identity, medins, qinghai_medins, stay, visit
from harness import D, line


@pytest.fixture
def qh(ledger):
    ledger.send(qinghai_medins("QH-ND", designated=False), enrolment("P", admdvs=QINGHAI))
    return ledger


@pytest.fixture
def lf(ledger):
    ledger.send(medins("LF-ND", designated=False), enrolment("P"))
    return ledger


def qh_stay(setl_id, *, in_scope, hifp, **kw):
    return stay(setl_id, "P", total=in_scope, in_scope=in_scope, hifp=hifp, admdvs=QINGHAI, hospital="QH-ND", **kw)


def lf_stay(setl_id, *, in_scope, hifp, **kw):
    return stay(setl_id, "P", total=in_scope, in_scope=in_scope, hifp=hifp, hospital="LF-ND", **kw)


# ---- Qinghai 三(二)2 ---------------------------------------------------------------------------------------

def test_qinghai_3_2_2_base_deductible_12000_ratio_80(qh):
    """青海 三(二)2: D 12,000, 80%. oop = 30,000 − 12,000 = 18,000; 0.80 × (18,000 − 12,000) = 4,800.00.
    psn = 30,000 − 12,000 − 4,800 = 13,200.00."""
    r = qh.one(qh_stay("S1", in_scope="30000", hifp="12000"))
    assert (D(r["hifmi_pay"]), D(r["maf_pay"]), D(r["psn_part_amt"])) == (D("4800.00"), 0, D("13200.00"))
    ci = line(r, "qinghai.ci.base")
    assert (ci["fund"], D(ci["base"]), D(ci["ratio"])) == ("critical_illness", D("18000"), D("0.80"))
    assert r["status"] is None


def test_qinghai_3_2_2_deductible_is_annual_and_cumulative(qh):
    """青海 三(二)2: stay 1 oop 8,000 (B 0 → 8,000 < 12,000): 0. Stay 2 oop 10,000: B before 8,000,
    0.80 × (max(0, 18,000 − 12,000) − max(0, 8,000 − 12,000)) = 0.80 × 6,000 = 4,800.00."""
    r1 = qh.one(qh_stay("S1", in_scope="10000", hifp="2000"))
    r2 = qh.one(qh_stay("S2", in_scope="20000", hifp="10000"))
    assert D(r1["hifmi_pay"]) == 0
    assert D(r2["hifmi_pay"]) == D("4800.00")
    assert qh.year("P").ci_base == D("18000")


def test_qinghai_3_2_2_base_has_no_cap(qh):
    """青海 三(二)2 不设封顶线: oop 1,000,000 → 0.80 × 988,000 = 790,400.00, nothing cut."""
    r = qh.one(qh_stay("S1", in_scope="1000000", hifp="0"))
    assert D(r["hifmi_pay"]) == D("790400.00")


@pytest.mark.parametrize("status", ["tekun", "dibao", "returned_poverty"])
def test_qinghai_3_2_2_tilt_halves_deductible_and_adds_5_points(qh, status):
    """青海 三(二)2: 特困、低保、返贫致贫 D 6,000 (12,000 × 50%), 85%, no cap.
    oop 18,000: 0.85 × (18,000 − 6,000) = 10,200.00 (base terms would give 4,800)."""
    qh.one(identity("P", status, admdvs=QINGHAI))
    r = qh.one(qh_stay("S1", in_scope="30000", hifp="12000"))
    assert r["status"] == status and D(r["hifmi_pay"]) == D("10200.00")
    ci = line(r, "qinghai.ci.tilt.tekun_dibao_returned")
    assert D(ci["ratio"]) == D("0.85")


def test_qinghai_3_2_2_tilt_has_no_cap(qh):
    """青海 三(二)2 tilt, no cap: oop 1,000,000 → 0.85 × (1,000,000 − 6,000) = 844,900.00."""
    qh.one(identity("P", "returned_poverty", admdvs=QINGHAI))
    assert D(qh.one(qh_stay("S1", in_scope="1000000", hifp="0"))["hifmi_pay"]) == D("844900.00")


def test_qinghai_other_statuses_keep_base_terms(qh):
    """青海 三(二)2 names only 特困、低保、返贫致贫: low_income keeps D 12,000 / 80% → 4,800.00."""
    qh.one(identity("P", "low_income", admdvs=QINGHAI))
    r = qh.one(qh_stay("S1", in_scope="30000", hifp="12000"))
    assert D(r["hifmi_pay"]) == D("4800.00")
    assert line(r, "qinghai.ci.base")


# ---- Linfen 二(三) ----------------------------------------------------------------------------------------

def test_linfen_2_3_base_terms_default_10000_60(lf):
    """临汾 二(三) base (policy.md §10 default): D 10,000, 60%.
    oop 30,000 → 0.60 × 20,000 = 12,000.00."""
    r = lf.one(lf_stay("S1", in_scope="50000", hifp="20000"))
    assert D(r["hifmi_pay"]) == D("12000.00")
    assert line(r, "linfen.ci.base")


def test_linfen_2_3_base_cap_300000(lf):
    """临汾 二(三) base cap 300,000 (default): oop 600,000 → 0.60 × 590,000 = 354,000 → capped 300,000.00;
    the next stay gets 0 (the cap is annual)."""
    r1 = lf.one(lf_stay("S1", in_scope="600000", hifp="0"))
    r2 = lf.one(lf_stay("S2", in_scope="10000", hifp="0"))
    assert D(r1["hifmi_pay"]) == D("300000.00")
    assert D(r2["hifmi_pay"]) == 0


@pytest.mark.parametrize("status", ["tekun", "dibao", "returned_poverty"])
def test_linfen_2_3_tilt_tekun_dibao_returned_half_deductible_80_no_cap(lf, status):
    """临汾 二(三): D × 50% = 5,000, 80%, 自2022年1月1日起取消封顶线.
    oop 30,000 → 0.80 × 25,000 = 20,000.00; oop 600,000 → 0.80 × 595,000 = 476,000.00 (no cap)."""
    lf.one(identity("P", status))
    r1 = lf.one(lf_stay("S1", in_scope="50000", hifp="20000"))
    assert D(r1["hifmi_pay"]) == D("20000.00")
    assert line(r1, "linfen.ci.tilt.tekun_dibao_returned")
    lf.send(enrolment("Q"), identity("Q", status))
    r2 = lf.one(stay("S2", "Q", total="600000", in_scope="600000", hifp="0", hospital="LF-ND"))
    assert D(r2["hifmi_pay"]) == D("476000.00")


@pytest.mark.parametrize("status", ["severe_disability", "low_income_elderly", "low_income_minor"])
def test_linfen_2_3_tilt_disability_elderly_minor_half_deductible_78_base_cap(lf, status):
    """临汾 二(三): D × 50% = 5,000, 78%, base cap.
    oop 30,000 → 0.78 × 25,000 = 19,500.00; oop 500,000 → 0.78 × 495,000 = 386,100 → capped 300,000.00."""
    lf.one(identity("P", status))
    r1 = lf.one(lf_stay("S1", in_scope="50000", hifp="20000"))
    assert D(r1["hifmi_pay"]) == D("19500.00")
    assert line(r1, "linfen.ci.tilt.disability_elderly_minor")
    lf.send(enrolment("Q"), identity("Q", status))
    r2 = lf.one(stay("S2", "Q", total="500000", in_scope="500000", hifp="0", hospital="LF-ND"))
    assert D(r2["hifmi_pay"]) == D("300000.00")


def test_employees_get_no_critical_illness(lf):
    """policy.md §11: employees (310) get no 大病: oop 30,000 stays with the person."""
    lf.one(enrolment("E", insutype="310"))
    r = lf.one(stay("S1", "E", total="50000", in_scope="50000", hifp="20000", hospital="LF-ND", insutype="310"))
    assert (D(r["hifmi_pay"]), D(r["psn_part_amt"])) == (0, D("30000.00"))
    assert lf.year("E").ci_base == 0


def test_outpatient_pays_no_critical_illness_and_adds_nothing_to_its_base(lf):
    """policy.md §11 `ci_outpatient` = false: a chronic visit with oop 20,000 gets no 大病 and leaves B at 0,
    so a stay with oop 12,000 then gets 0.60 × (12,000 − 10,000) = 1,200.00 (not 0.60 × 22,000 − …)."""
    v = lf.one(visit("V1", "P", total="20000", in_scope="20000", hifp="0", hospital="LF-ND"))
    r = lf.one(lf_stay("S1", in_scope="12000", hifp="0"))
    assert D(v["hifmi_pay"]) == 0
    assert D(r["hifmi_pay"]) == D("1200.00")


def test_critical_illness_uses_in_scope_oop_not_out_of_catalogue(lf):
    """policy.md §1: oop = in_scope − basic. total 60,000 with 10,000 out of catalogue and in_scope 50,000,
    basic 20,000 → oop 30,000 → 0.60 × 20,000 = 12,000.00; psn = 60,000 − 20,000 − 12,000 = 28,000.00."""
    r = lf.one(stay("S1", "P", total="60000", ooc="10000", in_scope="50000", hifp="20000", hospital="LF-ND"))
    assert (D(r["hifmi_pay"]), D(r["psn_part_amt"])) == (D("12000.00"), D("28000.00"))
