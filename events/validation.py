"""The anti-corruption layer's first gate: bytes → a valid inbound message, or a reason.

Bytes no parser should read (too large, not UTF-8, nested too deep) are
refused first (`events.limits`). Structure (types, required fields) is
msgspec's job; this adds what types cannot say: money with at most two
decimals and never negative, dates in order, no NUL in a text (PostgreSQL
refuses it), and the consistency rules of integration.md §1. Whatever the
bytes, `decode` returns a message or raises `Invalid`, nothing else.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import msgspec

from events import codes
from events.limits import MAX_MESSAGE_BYTES, brief, unreadable
from events.messages import DECODER, MSG_TYPES, Enrolment, Inbound, PsnIdentity, Settlement, TiltedGrant
from events.money import CENT, ZERO
from events.results import RESULT_TYPE_FOR, Outbound, Reason, Rejected

_MONEY_FIELDS = {
    Settlement: ("medfee_sumamt", "fulamt_ownpay_amt", "inscp_scp_amt", "hifp_pay", "oth_pay"),
    Enrolment: ("contribution_std",),
    TiltedGrant: ("amount",),
}
# Beyond this an amount is no platform figure, and 28-digit decimal arithmetic could no longer keep every cent.
MAX_AMOUNT = Decimal("1000000000000")    # 10^12 yuan
_KEY_FIELDS = ("setl_id", "psn_no", "year", "grant_id", "fixmedins_code", "status", "action", "admdvs")


# The fields a rejected result echoes, each kept as its raw JSON so one odd value loses no other.
_Keys = msgspec.defstruct("_Keys", [(name, msgspec.Raw, msgspec.Raw(b"null")) for name in ("msg_type", *_KEY_FIELDS)])
_KEYS = msgspec.json.Decoder(_Keys)
_KEY_VALUE = msgspec.json.Decoder(str | int | None)
_TEXT = msgspec.json.Decoder(str | None)


class Invalid(Exception):
    def __init__(self, code: str, message: str, msg_type: str | None = None, fields: dict | None = None):
        super().__init__(message)
        self.reason = Reason(code, message)
        self.msg_type = msg_type
        self.fields = fields or {}


def decode(raw: bytes) -> Inbound:
    """Decode and check one message; raises `Invalid` with a stable code."""
    why = unreadable(raw)
    if why is not None:
        raise Invalid(codes.INVALID_MESSAGE, why, *read_keys(raw[:MAX_MESSAGE_BYTES]))
    try:
        message = DECODER.decode(raw)
    except msgspec.DecodeError as exc:
        raise _explain(raw, exc) from None
    if b"\\u0000" in raw:
        _refuse_nul(message)
    return check(message)


def check(message: Inbound) -> Inbound:
    """Raise `Invalid` for what types cannot say; return the message with money at two decimals."""
    if getattr(message, "psn_no", None) == "":
        raise Invalid(codes.INVALID_MESSAGE, "`psn_no` must not be empty: it names the person the message is about",
                      _tag(message), _keys_of(message))
    if isinstance(message, PsnIdentity) and message.enddate is not None and message.enddate < message.begndate:
        raise Invalid(codes.INVALID_DATES, f"the status ends on {message.enddate}, before it begins on "
                                           f"{message.begndate} (policy.md §12)", "psn_identity", _keys_of(message))
    names = _MONEY_FIELDS.get(type(message))
    if names:
        amounts = []
        for name in names:
            value: Decimal = getattr(message, name)
            if not value.is_finite() or not -MAX_AMOUNT < value < MAX_AMOUNT:
                raise Invalid(codes.INVALID_AMOUNT, f"`{name}` must be a finite amount below {MAX_AMOUNT} yuan, "
                                                    f"got {brief(str(value))}", _tag(message), _keys_of(message))
            cents = value.quantize(CENT, rounding=ROUND_HALF_UP)     # exact when it has at most two decimals
            if cents != value:
                raise Invalid(codes.INVALID_AMOUNT, f"`{name}` must be yuan with at most two decimals, "
                                                    f"got {brief(str(value))}", _tag(message), _keys_of(message))
            if value < 0:
                raise Invalid(codes.NEGATIVE_AMOUNT, f"`{name}` must not be negative, got {value}",
                              _tag(message), _keys_of(message))
            amounts.append(cents if cents else ZERO)      # "-0" is echoed as 0.00, never "-0.00"
        message = msgspec.structs.replace(message, **dict(zip(names, amounts)))
        if isinstance(message, Settlement):
            _check_settlement(message)
    return message


def _tag(message: Inbound) -> str:
    return message.__struct_config__.tag  # type: ignore[return-value]


def _check_settlement(m: Settlement) -> None:
    if m.enddate < m.begndate:
        raise Invalid(codes.INVALID_DATES, f"discharge date {m.enddate} is before admission {m.begndate}", "settlement",
                      _keys_of(m))
    if m.medfee_sumamt < m.inscp_scp_amt + m.fulamt_ownpay_amt:
        raise Invalid(codes.AMOUNTS_INCONSISTENT,
                      f"medfee_sumamt {m.medfee_sumamt} is less than inscp_scp_amt {m.inscp_scp_amt} + "
                      f"fulamt_ownpay_amt {m.fulamt_ownpay_amt}", "settlement", _keys_of(m))
    if m.hifp_pay > m.inscp_scp_amt:
        raise Invalid(codes.AMOUNTS_INCONSISTENT,
                      f"hifp_pay {m.hifp_pay} exceeds inscp_scp_amt {m.inscp_scp_amt}", "settlement", _keys_of(m))
    if m.hifp_pay + m.oth_pay > m.medfee_sumamt:
        raise Invalid(codes.AMOUNTS_INCONSISTENT,
                      f"hifp_pay {m.hifp_pay} + oth_pay {m.oth_pay} exceeds medfee_sumamt {m.medfee_sumamt}",
                      "settlement", _keys_of(m))


def _refuse_nul(message: Inbound) -> None:
    for name in message.__struct_fields__:
        value = getattr(message, name)
        if isinstance(value, str) and "\x00" in value:
            fields = {k: v for k, v in _keys_of(message).items() if not (isinstance(v, str) and "\x00" in v)}
            raise Invalid(codes.INVALID_MESSAGE, f"`{name}` must not contain NUL (\\u0000)", _tag(message), fields)


def _explain(raw: bytes, exc: msgspec.DecodeError) -> Invalid:
    try:
        keys = _KEYS.decode(raw)
    except msgspec.ValidationError:
        return Invalid(codes.INVALID_MESSAGE, "a message must be a JSON object")
    except msgspec.DecodeError as bad_json:
        return Invalid(codes.INVALID_MESSAGE, f"not valid JSON: {bad_json}")
    msg_type, fields = read_keys(raw)
    if msg_type in MSG_TYPES:
        return Invalid(codes.INVALID_MESSAGE, str(exc), msg_type, fields)
    return Invalid(codes.UNKNOWN_MSG_TYPE, f"unknown msg_type {_quoted(keys.msg_type)}; expected one of "
                                           f"{sorted(MSG_TYPES)}", msg_type, fields)


def _quoted(value: msgspec.Raw) -> str:
    """A wrong msg_type as a reason may quote it: a string, shortened; of any other value only its kind."""
    try:
        text = _TEXT.decode(value)
    except (msgspec.DecodeError, ValueError):
        kind = {ord("{"): "an object", ord("["): "an array", ord("t"): "a boolean", ord("f"): "a boolean"}
        return f"(not a string but {kind.get(bytes(value)[0], 'a number')})"
    return "(absent)" if text is None else brief(repr(text))


def read_keys(raw: bytes) -> tuple[str | None, dict[str, Any]]:
    """(msg_type, the key fields that are strings or integers) of whatever bytes; (None, {}) if none can be read."""
    if len(raw) > MAX_MESSAGE_BYTES or unreadable(raw) is not None:
        return None, {}
    try:
        keys = _KEYS.decode(raw)
    except (msgspec.DecodeError, ValueError):
        return None, {}
    fields: dict[str, Any] = {}
    for name in _KEY_FIELDS:
        try:
            value = _KEY_VALUE.decode(getattr(keys, name))
        except (msgspec.DecodeError, ValueError):
            continue
        if value is not None and not (isinstance(value, str) and "\x00" in value):
            fields[name] = value
    try:
        msg_type = _TEXT.decode(keys.msg_type)
    except (msgspec.DecodeError, ValueError):
        msg_type = None
    if msg_type is not None and (len(msg_type) > 64 or not msg_type.isprintable()):
        msg_type = None                  # kept in the dead letter's `msg_type` column and echoed: no junk there
    return msg_type, fields


def _keys_of(message: Inbound) -> dict[str, Any]:
    return {k: getattr(message, k) for k in _KEY_FIELDS if hasattr(message, k)}


def rejected_result(reason: Reason, msg_type: str | None, fields: dict[str, Any]) -> Outbound:
    """The typed `<msg_type>_result` with `result: "rejected"`, keyed as far as the input allows."""
    cls = RESULT_TYPE_FOR.get(msg_type or "")
    if cls is None:
        return Rejected(result="rejected", reason=reason, received_msg_type=msg_type)
    wanted = {f: fields.get(f) for f in cls.__struct_fields__ if f in fields}
    for name in ("setl_id", "psn_no", "year", "grant_id", "fixmedins_code", "status", "action", "admdvs"):
        if name in cls.__struct_fields__:
            value = wanted.get(name)
            expected_int = name == "year"
            if value is not None and expected_int != isinstance(value, int):
                value = None
            wanted[name] = value
    return cls(result="rejected", reason=reason, **wanted)
