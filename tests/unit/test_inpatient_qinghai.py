"""policy.md §5 Qinghai 住院救助 (四(二)): applied after 大病 on `remaining`, shared 20,000 cap."""
from __future__ import annotations

import pytest

from builders import QINGHAI, enrolment, identity, qinghai_medins, stay
from harness import D, line


@pytest.fixture
def qh(ledger):
    ledger.send(qinghai_medins(), qinghai_medins("QH-ND", designated=False), enrolment("P", admdvs=QINGHAI))
    return ledger


def with_status(ledger, status):
    ledger.one(identity("P", status, admdvs=QINGHAI))
    return ledger


def qh_stay(setl_id, *, in_scope, hifp, **kw):
    kw.setdefault("total", in_scope)
    return stay(setl_id, "P", in_scope=in_scope, hifp=hifp, admdvs=QINGHAI, **kw)


@pytest.mark.parametrize("status", ["low_income", "dibao_marginal", "rural_at_risk"])
def test_qinghai_4_2_low_income_60_percent_above_2500_cumulative(qh, status):
    """青海 四(二): 低收入 (incl. 低保边缘, 农村易返贫致贫) 60% of cumulative annual remaining above 2,500.
    Stay 1: oop 10,000 − 6,000 = 4,000; 大病 0 (4,000 < 12,000); remaining 4,000;
            0.60 × (4,000 − 2,500) = 900.00; psn 10,000 − 6,000 − 900 = 3,100.00.
    Stay 2: oop 3,000, 大病 0 (B 7,000 < 12,000), remaining 3,000, cumulative before 4,000 > 2,500:
            0.60 × 3,000 = 1,800.00. Cap used 900 + 1,800 = 2,700.00 of 20,000."""
    with_status(qh, status)
    r1 = qh.one(qh_stay("S1", in_scope="10000", hifp="6000"))
    r2 = qh.one(qh_stay("S2", in_scope="5000", hifp="2000"))
    assert (r1["status"], D(r1["hifmi_pay"]), D(r1["maf_pay"]), D(r1["psn_part_amt"])) == (
        status, 0, D("900.00"), D("3100.00"))
    assert D(line(r1, "qinghai.inpatient.low_income")["ratio"]) == D("0.60")
    assert D(r2["maf_pay"]) == D("1800.00")
    assert (D(r2["cap"]["limit"]), D(r2["cap"]["used"]), D(r2["cap"]["remaining"])) == (
        D("20000"), D("2700.00"), D("17300.00"))


def test_qinghai_4_2_expenditure_poverty_50_percent_above_6000(qh):
    """青海 四(二): 支出型贫困 50% of cumulative remaining above 6,000.
    oop 20,000 − 10,000 = 10,000; 大病 0; 0.50 × (10,000 − 6,000) = 2,000.00; psn 8,000.00."""
    with_status(qh, "expenditure_poverty")
    r = qh.one(qh_stay("S1", in_scope="20000", hifp="10000"))
    assert (D(r["maf_pay"]), D(r["psn_part_amt"])) == (D("2000.00"), D("8000.00"))
    assert line(r, "qinghai.inpatient.expenditure_poverty")


def test_qinghai_4_1_below_deductible_self_pay_counts_into_the_base(qh):
    """青海 四(一): the in-scope self-pay below the 大病 deductible counts into the assistance base.
    expenditure_poverty, stay 1 remaining 5,000 (below 6,000: 0), stay 2 remaining 5,000:
    0.50 × (10,000 − 6,000) = 2,000.00."""
    with_status(qh, "expenditure_poverty")
    assert D(qh.one(qh_stay("S1", in_scope="10000", hifp="5000"))["maf_pay"]) == 0
    assert D(qh.one(qh_stay("S2", in_scope="10000", hifp="5000"))["maf_pay"]) == D("2000.00")


def test_qinghai_4_2_tekun_100_percent_of_remaining_after_tilted_ci(qh):
    """青海 四(二) tekun (default 100%, no starting line): oop 10,000; 大病 tilt 0.85 × (10,000 − 6,000) = 3,400;
    remaining 6,600 → assistance 6,600.00; psn 0."""
    with_status(qh, "tekun")
    r = qh.one(qh_stay("S1", in_scope="20000", hifp="10000"))
    assert (D(r["hifmi_pay"]), D(r["maf_pay"]), D(r["psn_part_amt"])) == (D("3400.00"), D("6600.00"), 0)
    assert line(r, "qinghai.inpatient.tekun_orphan")


@pytest.mark.parametrize("status", ["orphan", "de_facto_orphan", "hiv_child"])
def test_qinghai_4_2_orphans_100_percent_of_remaining(qh, status):
    """青海 四(二), 六(一): orphan (事实无人抚养儿童、艾滋病病毒感染儿童 as orphans), default 100%.
    oop 10,000; 大病 base 0 (< 12,000); remaining 10,000 → 10,000.00."""
    with_status(qh, status)
    r = qh.one(qh_stay("S1", in_scope="20000", hifp="10000"))
    assert (r["status"], D(r["maf_pay"]), D(r["psn_part_amt"])) == (status, D("10000.00"), 0)


@pytest.mark.parametrize("status, ci, maf", [
    ("dibao", "3400.00", "4620.00"),             # tilt 0.85 × 4,000 = 3,400; 0.70 × 6,600 = 4,620
    ("severe_disability", "0", "7000.00"),       # base 大病 0; 0.70 × 10,000 = 7,000
    ("key_entitled", "0", "7000.00"),
])
def test_qinghai_4_2_dibao_disability_entitled_70_percent(qh, status, ci, maf):
    """青海 四(二) (default 70%, no starting line): oop 20,000 − 10,000 = 10,000."""
    with_status(qh, status)
    r = qh.one(qh_stay("S1", in_scope="20000", hifp="10000"))
    assert (D(r["hifmi_pay"]), D(r["maf_pay"])) == (D(ci), D(maf))
    assert line(r, "qinghai.inpatient.dibao_disability_entitled")


def test_qinghai_4_2_cap_20000_per_year(qh):
    """青海 四(二) 每人每年最高救助限额2万元. orphan:
    Stay 1: oop 30,000; 大病 0.80 × 18,000 = 14,400; remaining 15,600 → 15,600.00 (used 15,600).
    Stay 2: oop 30,000; B 30,000 → 大病 0.80 × 30,000 = 24,000; remaining 6,000 → min(6,000, 20,000 − 15,600)
            = 4,400.00; used 20,000, remaining 0.
    Stay 3: nothing left: 0."""
    with_status(qh, "orphan")
    r1 = qh.one(qh_stay("S1", in_scope="40000", hifp="10000"))
    r2 = qh.one(qh_stay("S2", in_scope="40000", hifp="10000"))
    r3 = qh.one(qh_stay("S3", in_scope="40000", hifp="10000"))
    assert (D(r1["hifmi_pay"]), D(r1["maf_pay"])) == (D("14400.00"), D("15600.00"))
    assert (D(r2["hifmi_pay"]), D(r2["maf_pay"])) == (D("24000.00"), D("4400.00"))
    assert (D(r2["cap"]["used"]), D(r2["cap"]["remaining"])) == (D("20000.00"), 0)
    assert D(r3["maf_pay"]) == 0 and D(r3["psn_part_amt"]) == D("6000.00")
    assert qh.year("P").assistance_cap_used == D("20000.00")


def test_qinghai_returned_poverty_gets_the_ci_tilt_but_no_assistance_line(qh):
    """青海: returned_poverty is named only by the 大病 tilt (三(二)2); no 四(二) row.
    oop 10,000: 0.85 × 4,000 = 3,400.00; no assistance; psn 6,600.00."""
    with_status(qh, "returned_poverty")
    r = qh.one(qh_stay("S1", in_scope="20000", hifp="10000"))
    assert (D(r["hifmi_pay"]), D(r["maf_pay"]), D(r["psn_part_amt"])) == (D("3400.00"), 0, D("6600.00"))


def test_qinghai_assistance_only_at_designated_hospitals(qh):
    """policy.md §1 定点医疗机构: orphan at a non-designated hospital gets no assistance."""
    with_status(qh, "orphan")
    r = qh.one(qh_stay("S1", in_scope="20000", hifp="10000", hospital="QH-ND"))
    assert D(r["maf_pay"]) == 0 and D(r["psn_part_amt"]) == D("10000.00")
