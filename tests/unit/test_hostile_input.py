"""integration.md §4 "Bad input": input a hostile or careless platform may send gets its `rejected` result and a
dead letter, never an exception (ADR 0003 "Hostile input"). Each case below crashed or misbehaved before the
gate of events/limits.py: the reason is in its comment."""
from __future__ import annotations

import hashlib
import json

import msgspec
import pytest

from builders import cancel, enrolment, medins, stay
from events import codes
from events import ledger as ev
from events.limits import MAX_DEPTH, MAX_MESSAGE_BYTES, MAX_REASON_CHARS, MAX_TEXT_CHARS, Body, bounded, unreadable
from events.results import RESULT_DECODER, Reason
from events.validation import Invalid, decode, read_keys
from harness import run_to_end
from services.adjudicator.service import Adjudicator, peek



def raw(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


CANCEL = raw(cancel("S1", "P1"))


def nested(depth: int, kind: str = "[") -> bytes:
    if kind == "[":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def in_a_field(value: bytes) -> bytes:
    """A settlement_cancel carrying `value` in a field the decoder ignores."""
    return CANCEL[:-1] + b',"extra":' + value + b"}"


def padded(size: int) -> bytes:
    """A valid settlement_cancel of exactly `size` bytes (JSON whitespace inside the object)."""
    return CANCEL[:-1] + b" " * (size - len(CANCEL)) + b"}"


def letters(ledger) -> list[ev.MessageRejected]:
    return [e for e in ledger.store.ref_events if isinstance(e, ev.MessageRejected)]


def refused(ledger, data: bytes, code: str = codes.INVALID_MESSAGE, msg_type: str = "rejected") -> dict:
    """The one rejected result of `data`, checked in shape, bound and dead letter."""
    before = len(letters(ledger))
    results = ledger.send_raw(data)
    assert len(results) == 1
    r = results[0]
    assert (r["msg_type"], r["result"], r["reason"]["code"]) == (msg_type, "rejected", code), r
    assert 0 < len(r["reason"]["message"]) <= MAX_REASON_CHARS
    RESULT_DECODER.decode(json.dumps(r).encode())
    [letter] = letters(ledger)[before:]
    assert letter.code == code and letter.message == r["reason"]["message"] and letter.source == "test"
    assert letter.raw == data[:MAX_MESSAGE_BYTES]
    assert "\x00" not in letter.message and (letter.msg_type is None or letter.msg_type.isprintable())
    return r


# --- deep nesting: RecursionError out of msgspec (decode, _explain, peek, _fields_of) --------------------------------

@pytest.mark.parametrize("data", [nested(3000), nested(3000, "{"), nested(MAX_DEPTH + 1), nested(MAX_DEPTH + 1, "{"),
                                  b"[" * 30000, b'{"msg_type":' + nested(5000) + b"}", in_a_field(nested(3000, "{")),
                                  b"[" * 20 + b'{"a":' * 20 + b"{}" + b"}" * 20 + b"]" * 20])
def test_nesting_deeper_than_the_limit_is_an_invalid_message(ledger, data):
    r = refused(ledger, data)
    assert f"nested deeper than {MAX_DEPTH}" in r["reason"]["message"]
    assert peek(data) == (None, None) and read_keys(data) == (None, {})


@pytest.mark.parametrize("data", [nested(300_000), nested(300_000, "{")])
def test_hundreds_of_thousands_deep_is_refused_for_its_size_first(ledger, data):
    assert "bytes is more than" in refused(ledger, data)["reason"]["message"]


def test_nesting_up_to_the_limit_in_an_ignored_field_is_decided(ledger):
    ledger.send(medins(), enrolment("P1"), stay("S1", "P1", total="1000", in_scope="800", hifp="400"))
    assert ledger.send_raw(in_a_field(nested(MAX_DEPTH - 1)))[0]["result"] == "reversed"


def test_brackets_inside_strings_are_not_nesting(ledger):
    data = in_a_field(json.dumps("[" * 5000 + '{"\\"' + "{" * 5000).encode())
    assert unreadable(data) is None
    assert ledger.send_raw(data)[0]["reason"]["code"] == codes.UNKNOWN_SETTLEMENT


# --- size: a dead letter as big as its message would not fit in a commit under NATS max_payload -----------------

@pytest.mark.parametrize("size", [MAX_MESSAGE_BYTES + 1, 7_000_000])
def test_a_message_over_the_size_limit_keeps_a_prefix_its_size_and_sha256(ledger, size):
    data = padded(size)
    r = refused(ledger, data)
    assert f"{size} bytes is more than the {MAX_MESSAGE_BYTES}" in r["reason"]["message"]
    assert hashlib.sha256(data).hexdigest() in r["reason"]["message"]
    assert len(letters(ledger)[-1].raw) == MAX_MESSAGE_BYTES


def test_a_message_of_exactly_the_size_limit_is_read(ledger):
    assert ledger.send_raw(padded(MAX_MESSAGE_BYTES))[0]["reason"]["code"] == codes.UNKNOWN_SETTLEMENT


# --- invalid UTF-8: UnicodeDecodeError out of msgspec, or silently accepted in an ignored field -----------------------

@pytest.mark.parametrize("data", [CANCEL.replace(b'"P1"', b'"P\xff"'),                  # in a decoded field: crashed
                                  in_a_field(b'"\xc3\x28"'),                             # in an ignored field: accepted
                                  CANCEL.replace(b'"setl_id"', b'"setl\xed\xa0\x80"'),   # a surrogate, UTF-8 encoded
                                  b"\xc0\xaf", b"\xff" * 10])
def test_bytes_that_are_not_utf8_are_an_invalid_message(ledger, data):
    assert refused(ledger, data)["reason"]["message"].startswith("not valid UTF-8: byte ")


def test_a_byte_order_mark_is_named(ledger):
    assert "byte order mark" in refused(ledger, b"\xef\xbb\xbf" + CANCEL)["reason"]["message"]


# --- strings: lone surrogates and NUL (PostgreSQL text refuses U+0000: the projector would stop on it) ----------------

@pytest.mark.parametrize("escape", [b"\\ud800", b"\\udfff", b"\\ud800\\u0041"])
def test_a_lone_surrogate_is_an_invalid_message(ledger, escape):
    refused(ledger, CANCEL.replace(b'"P1"', b'"P' + escape + b'"'))


@pytest.mark.parametrize("field", [b"psn_no", b"setl_id"])
def test_nul_in_a_text_is_refused_and_not_echoed(ledger, field):
    data = CANCEL.replace(b'"' + field + b'":"', b'"' + field + b'":"A\\u0000')
    r = refused(ledger, data, msg_type="cancel_result")
    assert f"`{field.decode()}` must not contain NUL" in r["reason"]["message"]
    assert r[field.decode()] is None


def test_nul_byte_raw_and_an_escaped_backslash_u0000(ledger):
    refused(ledger, CANCEL.replace(b'"P1"', b'"P\x001"'))                      # a raw control byte: not JSON
    literal = CANCEL.replace(b'"S1"', b'"S\\\\u0000"')                         # the six characters \u0000: fine
    assert ledger.send_raw(literal)[0]["reason"]["code"] == codes.UNKNOWN_SETTLEMENT


# --- numbers: huge exponents and digit strings, NaN and Infinity ----------------------------------------------------

@pytest.mark.parametrize("amount, code", [
    (b"1e999999", codes.INVALID_AMOUNT), (b'"1e999999999"', codes.INVALID_AMOUNT),
    (b"1" * 60_000, codes.INVALID_AMOUNT), (b"0." + b"1" * 60_000, codes.INVALID_AMOUNT),
    (b'"NaN"', codes.INVALID_AMOUNT), (b'"-Infinity"', codes.INVALID_AMOUNT), (b'"sNaN"', codes.INVALID_AMOUNT),
    (b"1e99999999999999999999", codes.INVALID_MESSAGE),
])
def test_odd_numbers_are_rejected_with_a_short_sentence(ledger, amount, code):
    ledger.send(medins(), enrolment("P1"))
    data = raw(stay("S1", "P1", total="1000", in_scope="800", hifp="400")).replace(b'"1000"', amount)
    r = refused(ledger, data, code, "settlement_result")
    assert len(r["reason"]["message"]) < 200 and r["setl_id"] == "S1"


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"nan"])
def test_nan_and_infinity_literals_are_not_json(ledger, literal):
    data = raw(stay("S1", "P1", total="1000", in_scope="800", hifp="400")).replace(b'"1000"', literal)
    assert refused(ledger, data)["reason"]["message"].startswith("not valid JSON")


def test_a_huge_integer_in_an_ignored_field_does_not_hide_the_msg_type(ledger):
    """_explain used to decode the whole object: an integer beyond 64 bits made it 'not valid JSON'."""
    r = refused(ledger, b'{"msg_type":"teleport","n":' + b"9" * 5000 + b"}", codes.UNKNOWN_MSG_TYPE)
    assert r["received_msg_type"] == "teleport"


# --- shapes: not an object, msg_type of a wrong type, duplicate keys -------------------------------------------------

@pytest.mark.parametrize("data", [b"[1, 2]", b'"x"', b"1", b"null", b"true", b"[]", b"{}x", b"", b"  \t"])
def test_json_that_is_not_one_object_is_an_invalid_message(ledger, data):
    refused(ledger, data)


@pytest.mark.parametrize("value, said", [(b"1", "a number"), (b"true", "a boolean"), (b"null", "(absent)"),
                                         (b'["settlement"]', "an array"), (b'{"psn_no":"SECRET-PSN"}', "an object")])
def test_a_msg_type_that_is_not_a_string_is_named_by_its_kind_only(ledger, value, said):
    r = refused(ledger, b'{"msg_type":' + value + b',"psn_no":"P1"}', codes.UNKNOWN_MSG_TYPE)
    assert said in r["reason"]["message"] and "SECRET" not in r["reason"]["message"]
    assert r["received_msg_type"] is None


def test_an_unknown_msg_type_is_quoted_short_and_kept_only_when_printable(ledger):
    r = refused(ledger, raw({"msg_type": "x" * 60_000}), codes.UNKNOWN_MSG_TYPE)
    assert r["received_msg_type"] is None and "(60002 characters)" in r["reason"]["message"]
    r = refused(ledger, raw({"msg_type": "tele\x00port"}), codes.UNKNOWN_MSG_TYPE)
    assert r["received_msg_type"] is None


def test_duplicate_keys_the_last_wins_everywhere(ledger):
    """msgspec keeps the last of duplicate keys; the lane (peek) and the decision agree on whose message it is."""
    data = CANCEL.replace(b'"psn_no":"P1"', b'"psn_no":"P0","psn_no":"P1"')
    assert peek(data) == ("settlement_cancel", "P1") and decode(data).psn_no == "P1"
    refused(ledger, CANCEL.replace(b'{"msg_type":"settlement_cancel"', b'{"msg_type":"settlement_cancel",'
                                   b'"msg_type":"year_close"'), msg_type="year_close_result")


# --- sentences: bounded, whatever a rule or msgspec quotes ---------------------------------------------------------

@pytest.mark.parametrize("field", ["setl_id", "psn_no", "fixmedins_code", "dise_codg", "admdvs"])
def test_a_text_longer_than_the_limit_is_refused_by_its_type(ledger, field):
    """A 28 kB setl_id fits in a message; 88 such stays and one late status made a 5 MB commit (adjustments echo
    each setl_id): a few more and it passes NATS max_payload, which closes the ledger's connection."""
    ledger.send(medins(), enrolment("P1"))
    msg = stay("S1", "P1", total="1000", in_scope="800", hifp="400")
    r = refused(ledger, raw({**msg, field: "X" * (MAX_TEXT_CHARS + 1)}), msg_type="settlement_result")
    assert r["reason"]["message"] == f"Expected `str` of length <= {MAX_TEXT_CHARS} - at `$.{field}`"
    at_the_limit = ledger.send_raw(raw({**msg, "setl_id": "S2", field: "X" * MAX_TEXT_CHARS}))[0]
    assert (at_the_limit["reason"] or {}).get("code") != codes.INVALID_MESSAGE, at_the_limit


def test_every_sentence_is_bounded_and_free_of_nul():
    long = Reason("x", "a\x00" * 5000)
    assert len(bounded(long).message) == MAX_REASON_CHARS and "\x00" not in bounded(long).message
    assert bounded(Reason("x", "short")) == Reason("x", "short")


def test_msgspec_quoting_a_long_enum_value_gives_a_bounded_sentence(ledger):
    data = raw(stay("S1", "P1", total="1", in_scope="1", hifp="1")).replace(b'"med_type":"21"',
                                                                          b'"med_type":"' + b"9" * 60_000 + b'"')
    assert len(refused(ledger, data, msg_type="settlement_result")["reason"]["message"]) == MAX_REASON_CHARS


# --- the gate itself ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [nested(3000), b"\xff", padded(MAX_MESSAGE_BYTES + 1), b'{"a":"\\u0000"}'])
def test_decode_raises_invalid_and_nothing_else(data):
    with pytest.raises(Invalid):
        decode(data)


def test_a_body_read_in_pieces_says_what_the_gate_says_of_the_whole():
    data = padded(3 * MAX_MESSAGE_BYTES + 17)
    body = Body()
    for i in range(0, len(data), 10_000):
        body.add(data[i:i + 10_000])
    assert body.whole is None and body.size == len(data) and bytes(body.head) == data[:MAX_MESSAGE_BYTES]
    assert body.refusal() == unreadable(data)
    small = Body()
    small.add(CANCEL)
    assert small.whole == CANCEL


def test_adjudicator_submit_of_deep_input_answers(ledger):
    """peek ran before the Handler: its RecursionError made `submit` raise (rpc: 'unavailable'; feed: nak, poison)."""
    results = run_to_end(Adjudicator(ledger.handler).submit(nested(3000, "{"), "test"))
    assert results[0].reason.code == codes.INVALID_MESSAGE


def test_a_dead_letter_fits_in_a_commit_under_nats_max_payload(ledger):
    ledger.send_raw(padded(7_900_000))
    commit = ev.Commit("c", "c", [letters(ledger)[-1]])
    assert len(msgspec.json.encode(commit)) < 100_000
