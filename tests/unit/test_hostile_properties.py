"""Properties of the gate over arbitrary input (integration.md §4): whatever the bytes, `decode` returns a message
or raises `Invalid`; the Handler and `ledger replay` give each message (line) exactly one result — plus the
adjustments it may cause — that is a valid result; nothing raises."""
from __future__ import annotations

import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import ledger as ev
from events.limits import MAX_MESSAGE_BYTES, MAX_REASON_CHARS, Body, unreadable
from events.messages import MSG_TYPES, Inbound
from events.results import RESULT_DECODER, encode_result
from events.validation import Invalid, decode, read_keys
from harness import Ledger, run_to_end
from events import samples
from services.adjudicator.service import peek
from services.cli.replay import message_lines, run

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63, max_value=2**200)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
           | st.decimals(allow_nan=False, allow_infinity=False).map(str))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)
FIELDS = ("setl_id", "mdtrt_id", "psn_no", "admdvs", "insutype", "med_type", "fixmedins_code", "begndate",
          "enddate", "setl_time", "dise_codg", "medfee_sumamt", "fulamt_ownpay_amt", "inscp_scp_amt", "hifp_pay",
          "year", "amount", "status", "action", "grant_id", "cancel_time", "brdy", "enrol_date", "designated")
plausible = (st.sampled_from(["P1", "S1", "141002", "630102", "390", "21", "2022-03-10", "2022-03-10T10:00:00Z",
                              "1000", "-1", "0.001", "dibao", "grant", "LF-I", "", "\x00", "\ud800", "é"])
             | st.integers(1990, 2110) | json_values)
messages = st.fixed_dictionaries(
    {"msg_type": st.sampled_from(sorted(MSG_TYPES)) | json_values},
    optional={name: plausible for name in FIELDS})


VALID = [samples.medins(), samples.identity("P1"), samples.enrolment("P1"), samples.settlement("S1", "P1"),
         samples.cancel("S1", "P1"), samples.tilted_grant("G1", "P1")]
# A valid message with a few fields changed or added: reaches the checks past the types, and some are decided.
mutated = st.builds(lambda base, changes: {**base, **changes}, st.sampled_from(VALID),
                    st.dictionaries(st.sampled_from(FIELDS), plausible, max_size=2))


def deep(depth: int, kinds: list[bytes], closed: bool, inside: bool) -> bytes:
    opens = b"".join(kinds[i % len(kinds)] for i in range(depth))
    closes = b"".join(b"]" if kinds[i % len(kinds)] == b"[" else b"}" for i in reversed(range(depth)))
    body = opens + b"0" + (closes if closed else b"")
    return b'{"msg_type":"settlement","psn_no":"P1","x":' + body + b"}" if inside else body


kinds = st.lists(st.sampled_from([b"[", b'{"k":']), min_size=1, max_size=3)
deep_inputs = st.builds(deep, st.integers(1, 200) | st.integers(1, 120_000), kinds, st.booleans(), st.booleans())
any_input = (st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())
             | (messages | mutated).map(lambda m: json.dumps(m).encode()) | deep_inputs)


def one_result_each(results: list) -> None:
    """One result for the message, then only the adjustments it caused; every one a valid result."""
    assert results and all(r.__struct_config__.tag == "settlement_adjustment" for r in results[1:])
    for r in results:
        RESULT_DECODER.decode(encode_result(r))
    reason = getattr(results[0], "reason", None)
    if results[0].result == "rejected":
        assert 0 < len(reason.message) <= MAX_REASON_CHARS


@FAST
@given(any_input)
def test_decode_returns_a_message_or_raises_invalid(data: bytes) -> None:
    try:
        assert isinstance(decode(data), Inbound)
    except Invalid as bad:
        assert bad.reason.code and bad.reason.message
    peek(data)
    msg_type, fields = read_keys(data)
    assert msg_type is None or isinstance(msg_type, str)


@FAST
@given(st.lists(any_input, min_size=1, max_size=6))
def test_the_handler_answers_every_input_once_and_keeps_each_rejection(inputs: list[bytes]) -> None:
    ledger = Ledger()
    ledger.send_raw(json.dumps({"msg_type": "medins", "fixmedins_code": "LF-I", "fixmedins_name": "x",
                                "admdvs": "141002", "designated": True, "in_province": True}).encode())
    for data in inputs:
        before = len(ledger.store.ref_events)
        results = run_to_end(ledger.handler.handle(data, "test"))
        one_result_each(results)
        if results[0].result == "rejected":
            letter = ledger.store.ref_events[before]
            assert isinstance(letter, ev.MessageRejected) and letter.raw == data[:MAX_MESSAGE_BYTES]


lines = st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"")) | any_input.map(lambda b: b.replace(b"\n", b" "))


@SLOW
@given(st.lists(lines, max_size=12), st.sampled_from([b"\n", b"\r\n"]))
def test_ledger_replay_prints_one_result_per_non_empty_line(tmp_path_factory, body: list[bytes], eol: bytes) -> None:
    path = tmp_path_factory.mktemp("replay") / "in.jsonl"
    path.write_bytes(eol.join(body))
    out = io.BytesIO()
    assert run(str(path), None, out) == 0
    printed = [RESULT_DECODER.decode(line) for line in out.getvalue().splitlines()]
    answers = [r for r in printed if r.__struct_config__.tag != "settlement_adjustment"]
    wanted = [line.strip() for line in body if line.strip()]
    assert len(answers) == len(wanted)
    for line, answer in zip(wanted, answers):
        try:
            decode(line)
        except Invalid as bad:
            assert (answer.result, answer.reason.code) == ("rejected", bad.reason.code)


@SLOW
@given(st.lists(st.tuples(st.sampled_from([b"", b" ", b"\t ", b" " * 70_000]), st.integers(0, 3 * MAX_MESSAGE_BYTES),
                          st.sampled_from([b"", b" ", b" \r", b" " * 70_000])), max_size=4))
def test_long_lines_are_read_in_bounded_pieces_as_the_gate_reads_them_whole(parts) -> None:
    body = [lead + b"x" * n + trail for lead, n, trail in parts]
    read = list(message_lines(io.BytesIO(b"\n".join(body))))
    wanted = [line.strip() for line in body if line.strip()]
    assert len(read) == len(wanted)
    for got, line in zip(read, wanted):
        if len(line) <= MAX_MESSAGE_BYTES:
            assert got == line
        else:
            assert isinstance(got, Body) and got.refusal() == unreadable(line)
            assert bytes(got.head) == line[:MAX_MESSAGE_BYTES]
