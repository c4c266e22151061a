"""tilted_grant 倾斜救助 (青海 四(二), policy.md §9): counts against the shared cap; the part over it is refused."""
from __future__ import annotations

from builders import QINGHAI, enrolment, grant, identity, qinghai_medins, stay
from harness import D


def test_grant_within_the_cap(ledger):
    """5,000 of 20,000: granted in full, cap used 5,000."""
    ledger.one(enrolment("P", admdvs=QINGHAI))
    r = ledger.one(grant("G1", "P", "5000"))
    assert (r["result"], D(r["granted"]), D(r["refused"]), r["reason"]) == ("settled", D("5000"), 0, None)
    assert r["cap"] == {"limit": "20000.00", "used": "5000.00", "remaining": "15000.00"}


def test_grant_over_the_cap_is_refused_in_part_with_the_reason(ledger):
    """orphan stays use 15,600 (see test_qinghai_4_2_cap_20000_per_year); a grant of 5,000:
    granted min(5,000, 20,000 − 15,600) = 4,400.00; refused 600.00 with code over_annual_cap."""
    ledger.send(qinghai_medins(), enrolment("P", admdvs=QINGHAI), identity("P", "orphan", admdvs=QINGHAI))
    ledger.one(stay("S1", "P", total="40000", in_scope="40000", hifp="10000", admdvs=QINGHAI))
    r = ledger.one(grant("G1", "P", "5000"))
    assert (D(r["requested"]), D(r["granted"]), D(r["refused"])) == (D("5000"), D("4400.00"), D("600.00"))
    assert r["reason"]["code"] == "over_annual_cap" and "20000" in r["reason"]["message"]
    assert D(r["cap"]["remaining"]) == 0


def test_grant_uses_up_room_of_later_settlements(ledger):
    """A grant of 18,000 leaves 2,000: an orphan stay worth 15,600 then gets 2,000.00."""
    ledger.send(qinghai_medins(), enrolment("P", admdvs=QINGHAI), identity("P", "orphan", admdvs=QINGHAI))
    ledger.one(grant("G1", "P", "18000"))
    r = ledger.one(stay("S1", "P", total="40000", in_scope="40000", hifp="10000", admdvs=QINGHAI))
    assert D(r["maf_pay"]) == D("2000.00")


def test_grant_when_the_cap_is_full_is_refused_whole(ledger):
    ledger.one(enrolment("P", admdvs=QINGHAI))
    ledger.one(grant("G1", "P", "20000"))
    r = ledger.one(grant("G2", "P", "1"))
    assert (D(r["granted"]), D(r["refused"]), r["reason"]["code"]) == (0, D("1"), "over_annual_cap")
