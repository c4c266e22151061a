"""settlement_cancel (integration.md §1, policy.md §8.4): compensating events restore every counter."""
from __future__ import annotations

import pytest

from builders import QINGHAI, cancel, enrolment, identity, medins, qinghai_medins, stay
from events import ledger as ev
from harness import D


@pytest.fixture
def lf(ledger):
    ledger.send(medins(), enrolment("P"))
    return ledger


def test_cancel_restores_every_counter(lf):
    """A dibao stay that moves every kind of counter, then cancelled. At LF-II (out-of-catalogue class
    II_city, 20%), 戈谢病 E75.2: total 140,000 = in_scope 100,000 + ooc 40,000; hifp 50,000 → oop 50,000.
    大病 tilt 0.80 × 45,000 = 36,000; r 14,000; dibao 0.70 × 14,000 = 9,800 (shared counter);
    Gaucher 0.70 × 4,200 = 2,940 (own counter); hospital 40,000 − 0.20 × 140,000 = 12,000.
    After the cancel every counter is back at 0 and the result gives back what was paid."""
    lf.send(medins("LF-II", ooc_class="II_city"), identity("P", "dibao"))
    s = lf.one(stay("S1", "P", total="140000", ooc="40000", in_scope="100000", hifp="50000", dise="E75.2",
                    hospital="LF-II"))
    assert (s["hifmi_pay"], s["maf_pay"], s["hosp_part_amt"]) == ("36000.00", "12740.00", "12000.00")
    c = lf.one(cancel("S1", "P"))
    assert c["result"] == "reversed"
    assert (c["hifmi_pay"], c["maf_pay"], c["hosp_part_amt"]) == (s["hifmi_pay"], s["maf_pay"], s["hosp_part_amt"])
    y = lf.year("P")
    assert (y.ci_base, y.ci_paid, y.assist_base, y.assistance_cap_used) == (0, 0, 0, 0)
    assert all(v == 0 for v in y.own_used.values()) and all(v == 0 for v in y.rule_totals.values())
    assert y.burden == 0
    assert D(c["cap"]["used"]) == 0


def test_cancel_emits_compensating_events_and_deletes_nothing(lf):
    """policy.md §8.4: one payment_reversed per payment line; the settled facts stay in the ledger."""
    lf.one(identity("P", "dibao"))
    lf.one(stay("S1", "P", total="50000", in_scope="50000", hifp="30000"))
    lf.one(cancel("S1", "P"))
    events = [e for _, commit in lf.store.commits for e in commit.events]
    reversed_ = [e for e in events if isinstance(e, ev.PaymentReversed)]
    assert [(e.fund, e.rule_id, e.amount) for e in reversed_] == [
        ("critical_illness", "linfen.ci.tilt.tekun_dibao_returned", D("12000.00")),
        ("assistance", "linfen.inpatient.dibao", D("5600.00"))]
    assert any(isinstance(e, ev.HospitalStaySettled) and e.setl_id == "S1" for e in events)


def test_next_settlement_sees_the_restored_room(ledger):
    """Qinghai orphan (see test_qinghai_4_2_cap_20000_per_year): S1 pays 15,600 of the 20,000 cap; cancelled;
    S2, the same stay, gets the same 大病 (14,400, B back to 0) and the same 15,600 (cap back to 0)."""
    ledger.send(qinghai_medins(), enrolment("P", admdvs=QINGHAI), identity("P", "orphan", admdvs=QINGHAI))
    s1 = ledger.one(stay("S1", "P", total="40000", in_scope="40000", hifp="10000", admdvs=QINGHAI))
    ledger.one(cancel("S1", "P"))
    s2 = ledger.one(stay("S2", "P", total="40000", in_scope="40000", hifp="10000", admdvs=QINGHAI))
    assert (s1["hifmi_pay"], s1["maf_pay"]) == (s2["hifmi_pay"], s2["maf_pay"]) == ("14400.00", "15600.00")
    assert s2["cap"] == {"limit": "20000.00", "used": "15600.00", "remaining": "4400.00"}


def test_later_settlements_are_not_re_decided(lf):
    """integration.md §1: cancelling S1 does not touch S2's payments."""
    lf.one(identity("P", "dibao"))
    lf.one(stay("S1", "P", total="50000", in_scope="50000", hifp="30000"))
    s2 = lf.one(stay("S2", "P", total="10000", in_scope="10000", hifp="0"))
    lf.one(cancel("S1", "P"))
    y = lf.year("P")
    assert y.ci_paid == D(s2["hifmi_pay"]) and y.assistance_cap_used == D(s2["maf_pay"])


def test_cancel_twice_is_a_duplicate(lf):
    lf.one(identity("P", "dibao"))
    lf.one(stay("S1", "P", total="50000", in_scope="50000", hifp="30000"))
    first = lf.one(cancel("S1", "P"))
    second = lf.one(cancel("S1", "P"))
    assert second["result"] == "duplicate"
    assert {k: v for k, v in second.items() if k != "result"} == {k: v for k, v in first.items() if k != "result"}
    assert lf.year("P").assistance_cap_used == 0


def test_cancel_of_an_unknown_settlement_is_rejected(lf):
    r = lf.one(cancel("NOPE", "P"))
    assert (r["msg_type"], r["result"], r["reason"]["code"]) == ("cancel_result", "rejected", "unknown_settlement")
    assert r["setl_id"] == "NOPE"


def test_cancel_names_the_person(lf):
    """A settlement is the person's: another psn_no cannot cancel it."""
    lf.one(stay("S1", "P", total="100", in_scope="100", hifp="0"))
    assert lf.one(cancel("S1", "OTHER"))["reason"]["code"] == "unknown_settlement"
