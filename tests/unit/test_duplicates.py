"""integration.md §2: the same key asked again returns the stored result, `"result": "duplicate"`, nothing paid twice."""
from __future__ import annotations

from builders import QINGHAI, enrolment, grant, identity, medins, stay
from harness import D


def same_figures(first: dict, again: dict) -> bool:
    return {k: v for k, v in first.items() if k != "result"} == {k: v for k, v in again.items() if k != "result"}


def test_settlement_by_setl_id(ledger):
    ledger.send(medins(), enrolment("P"), identity("P", "dibao"))
    first = ledger.one(stay("S1", "P", total="50000", in_scope="50000", hifp="30000"))
    commits = len(ledger.store.commits)
    again = ledger.one(stay("S1", "P", total="50000", in_scope="50000", hifp="30000"))
    assert (first["result"], again["result"]) == ("settled", "duplicate")
    assert same_figures(first, again)
    assert len(ledger.store.commits) == commits                 # nothing stored, nothing paid twice
    assert ledger.year("P").assistance_cap_used == D("5600.00")


def test_settlement_by_setl_id_even_with_other_figures(ledger):
    """The key is setl_id: a resend with other amounts still gets the original answer."""
    ledger.send(medins(), enrolment("P"))
    first = ledger.one(stay("S1", "P", total="500", in_scope="500", hifp="0"))
    again = ledger.one(stay("S1", "P", total="900", in_scope="900", hifp="0"))
    assert again["result"] == "duplicate" and again["medfee_sumamt"] == first["medfee_sumamt"] == "500.00"


def test_enrolment_by_year(ledger):
    ledger.one(identity("P", "tekun"))
    first = ledger.one(enrolment("P"))
    again = ledger.one(enrolment("P", enrol_date="2022-03-01"))
    other_year = ledger.one(enrolment("P", year=2023, std="380"))
    assert (first["result"], again["result"], other_year["result"]) == ("settled", "duplicate", "settled")
    assert same_figures(first, again)


def test_grant_by_grant_id(ledger):
    ledger.one(enrolment("P", admdvs=QINGHAI))
    first = ledger.one(grant("G1", "P", "3000"))
    again = ledger.one(grant("G1", "P", "3000"))
    assert (first["result"], again["result"]) == ("settled", "duplicate") and same_figures(first, again)
    assert ledger.year("P").assistance_cap_used == D("3000")


def test_identical_identity(ledger):
    first = ledger.one(identity("P", "dibao"))
    again = ledger.one(identity("P", "dibao"))
    other_doc = ledger.one(identity("P", "dibao", doc_no="MZ-2"))
    assert (first["result"], again["result"], other_doc["result"]) == ("recorded", "duplicate", "recorded")


def test_rejected_messages_are_not_remembered(ledger):
    """A settlement rejected `not_enrolled` is decided when the platform sends it again after the enrolment."""
    ledger.one(medins())
    msg = stay("S1", "P", total="100", in_scope="100", hifp="0")
    assert ledger.one(msg)["reason"]["code"] == "not_enrolled"
    ledger.one(enrolment("P"))
    assert ledger.one(msg)["result"] == "settled"
