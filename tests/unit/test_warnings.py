"""policy.md §7 因病返贫致贫双预警, with the §11 readings: raised once, when the figure first exceeds (strictly)."""
from __future__ import annotations

import pytest

from builders import QINGHAI, enrolment, identity, medins, qinghai_medins, stay


@pytest.fixture
def qh(ledger):
    ledger.send(qinghai_medins(), enrolment("E", admdvs=QINGHAI, insutype="310"), enrolment("R", admdvs=QINGHAI))
    return ledger


def employee_stay(setl_id, psn_no="E", *, total, insutype="310"):
    """Out of catalogue only, no basic: the whole `total` is the person's burden (no 大病 for 310)."""
    return stay(setl_id, psn_no, total=total, ooc=total, in_scope="0", hifp="0", admdvs=QINGHAI, insutype=insutype)


def test_qinghai_5_1_employee_warning_raised_once_when_burden_first_exceeds_the_wage(qh):
    """青海 五(一) with §11: cumulative psn_part_amt (out of catalogue included) > 100,000 (default 2021 wage).
    50,000 + 50,000 = 100,000: not above → no warning; + 0.01 = 100,000.01 > 100,000 → `illness_poverty`;
    a further stay raises nothing (once per person-year)."""
    w = [qh.one(employee_stay(f"S{i}", total=t))["warnings"] for i, t in enumerate(("50000", "50000", "0.01", "5"))]
    assert w == [[], [], ["illness_poverty"], []]
    assert "illness_poverty" in qh.year("E").warnings


def test_qinghai_5_1_employee_warning_is_for_employees_only(qh):
    """青海 五(一): 参保职工. A resident (390) with the same burden gets no such warning."""
    r = qh.one(employee_stay("S1", "R", total="150000", insutype="390"))
    assert r["warnings"] == []


def test_linfen_3_3_warning_when_inpatient_remaining_first_exceeds_quarter_of_income(ledger):
    """临汾 三(三) with §11: cumulative inpatient remaining > 25% × 27,426 = 6,856.50, whatever the status.
    S1: in_scope 10,000, hifp 3,143.50 → oop 6,856.50; 大病 0; remaining 6,856.50: not above → none.
    S2: remaining 1.00 → 6,857.50 > 6,856.50 → `high_self_pay`. S3: already raised → none."""
    ledger.send(medins(), enrolment("P"))
    w = [ledger.one(stay("S1", "P", total="10000", in_scope="10000", hifp="3143.50"))["warnings"],
         ledger.one(stay("S2", "P", total="1", in_scope="1", hifp="0"))["warnings"],
         ledger.one(stay("S3", "P", total="9000", in_scope="9000", hifp="0"))["warnings"]]
    assert w == [[], ["high_self_pay"], []]


def test_linfen_3_3_warning_whatever_the_status(ledger):
    """tekun has its remaining paid in full by assistance, but the warning measures `remaining` itself:
    oop 20,000; 大病 tilt 0.80 × 15,000 = 12,000; remaining 8,000 > 6,856.50 → raised."""
    ledger.send(medins(), enrolment("P"), identity("P", "tekun"))
    assert ledger.one(stay("S1", "P", total="50000", in_scope="50000", hifp="30000"))["warnings"] == ["high_self_pay"]
