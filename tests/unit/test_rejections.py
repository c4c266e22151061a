"""integration.md §4: every rejection code of events/codes.py the engine can produce, each with a sentence,
a typed `<msg_type>_result` (or `rejected` when the type is unknown) and a dead letter; nothing half-applied."""
from __future__ import annotations

import pytest

from builders import LINFEN, cancel, enrolment, identity, medins, raw, stay
from events import codes
from events import ledger as ev


def dead_letters(ledger) -> list[ev.MessageRejected]:
    return [e for e in ledger.store.ref_events if isinstance(e, ev.MessageRejected)]


def rejected(ledger, data: bytes | dict, code: str, msg_type: str) -> dict:
    results = ledger.send_raw(data if isinstance(data, bytes) else raw(data))
    assert len(results) == 1
    r = results[0]
    assert (r["msg_type"], r["result"], r["reason"]["code"]) == (msg_type, "rejected", code), r
    assert r["reason"]["message"]
    letter = dead_letters(ledger)[-1]
    assert letter.code == code and letter.raw
    return r


@pytest.fixture
def lf(ledger):
    ledger.send(medins(), enrolment("P"))
    return ledger


def a_stay(**kw):
    base = dict(total="1000", in_scope="800", hifp="400", ooc="100")
    base.update(kw)
    return stay("S1", "P", **base)


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b'"a string"'])
def test_invalid_message_not_a_json_object(ledger, data):
    rejected(ledger, data, codes.INVALID_MESSAGE, "rejected")


def test_invalid_message_missing_field(lf):
    msg = a_stay()
    del msg["hifp_pay"]
    r = rejected(lf, msg, codes.INVALID_MESSAGE, "settlement_result")
    assert r["setl_id"] == "S1" and "hifp_pay" in r["reason"]["message"]


def test_invalid_message_wrong_type(lf):
    rejected(lf, {**enrolment("P"), "year": "twenty"}, codes.INVALID_MESSAGE, "subsidy_result")


def test_unknown_msg_type(ledger):
    r = rejected(ledger, {"msg_type": "bogus"}, codes.UNKNOWN_MSG_TYPE, "rejected")
    assert r["received_msg_type"] == "bogus"


@pytest.mark.parametrize("field, value", [("hifp_pay", "400.001"), ("medfee_sumamt", "NaN")])
def test_invalid_amount(lf, field, value):
    rejected(lf, {**a_stay(), field: value}, codes.INVALID_AMOUNT, "settlement_result")


def test_negative_amount(lf):
    rejected(lf, a_stay(oth="-1"), codes.NEGATIVE_AMOUNT, "settlement_result")


@pytest.mark.parametrize("kw", [
    dict(total="800", in_scope="800", ooc="100"),       # 800 < 800 + 100
    dict(in_scope="300", hifp="400"),                   # basic above in-scope
    dict(hifp="800", in_scope="800", ooc="0", oth="300"),   # 800 + 300 > 1,000
])
def test_amounts_inconsistent(lf, kw):
    rejected(lf, a_stay(**kw), codes.AMOUNTS_INCONSISTENT, "settlement_result")


def test_invalid_dates(lf):
    rejected(lf, a_stay(begndate="2022-03-11"), codes.INVALID_DATES, "settlement_result")


@pytest.mark.parametrize("msg", [
    stay("S1", "P", total="100", in_scope="100", hifp="0", admdvs="110101"),          # Beijing: no pack
    stay("S1", "P", total="100", in_scope="100", hifp="0", enddate="2021-12-31"),     # before linfen-2022
])
def test_unknown_pack(lf, msg):
    rejected(lf, msg, codes.UNKNOWN_PACK, "settlement_result")


@pytest.mark.parametrize("status", ["bogus", "orphan"])     # orphan is Qinghai's, not Linfen's
def test_unknown_status(ledger, status):
    r = rejected(ledger, identity("P", status, admdvs=LINFEN), codes.UNKNOWN_STATUS, "identity_result")
    assert ledger.store.persons["P"].statuses == {}
    assert r["status"] == status


def test_unknown_medins(lf):
    rejected(lf, a_stay(hospital="NOWHERE"), codes.UNKNOWN_MEDINS, "settlement_result")


def test_not_enrolled(ledger):
    ledger.one(medins())
    rejected(ledger, a_stay(), codes.NOT_ENROLLED, "settlement_result")
    assert "S1" not in ledger.store.persons["P"].settlements


def test_outside_green_channel(ledger):
    rejected(ledger, enrolment("P", in_normal_period=False), codes.OUTSIDE_GREEN_CHANNEL, "subsidy_result")


def test_unknown_settlement(lf):
    rejected(lf, cancel("S404", "P"), codes.UNKNOWN_SETTLEMENT, "cancel_result")


def test_a_rejection_changes_no_counter(lf):
    lf.one(identity("P", "dibao"))
    lf.one(stay("S0", "P", total="50000", in_scope="50000", hifp="30000"))
    before = (lf.year("P").ci_base, lf.year("P").assistance_cap_used, len(lf.person("P").settlements))
    rejected(lf, a_stay(hospital="NOWHERE"), codes.UNKNOWN_MEDINS, "settlement_result")
    assert (lf.year("P").ci_base, lf.year("P").assistance_cap_used, len(lf.person("P").settlements)) == before


@pytest.mark.parametrize("value", ["1e30", "99999999999999999999999999999", "1000000000000"])
def test_an_amount_beyond_range_is_rejected_not_a_crash(lf, value):
    """An amount too large for the ledger's 28-digit decimals used to raise decimal.InvalidOperation out of
    Handler.handle (a crashed replay, a poison message). It is now `invalid_amount` like any bad figure."""
    rejected(lf, a_stay(total=value), codes.INVALID_AMOUNT, "settlement_result")


def test_negative_zero_is_echoed_as_zero(lf):
    """"-0" is not negative; it is echoed as 0.00, never "-0.00"."""
    r = lf.one(a_stay(hifp="-0", oth="-0.00"))
    assert (r["result"], r["hifp_pay"], r["oth_pay"]) == ("settled", "0.00", "0.00")


@pytest.mark.parametrize("msg", [enrolment(""), cancel("S1", ""), identity("", "dibao")])
def test_an_empty_psn_no_is_an_invalid_message(lf, msg):
    """An empty psn_no used to reach the engine as 'no person' and crash it (AssertionError, AttributeError)."""
    rejected(lf, msg, codes.INVALID_MESSAGE, {"enrolment": "subsidy_result", "settlement_cancel": "cancel_result",
                                              "psn_identity": "identity_result"}[msg["msg_type"]])
