"""Reading stored commits: the one decoder, with upcasters for shapes that changed.

Every reader of the stream (persons, reference data, audit, projections, verify)
decodes through `decode_commit` or `decode_event`, so the first event type that
is replaced cannot break one of them alone.

Additive changes need no upcaster (new fields have defaults). When an event type
is replaced, register a function from the old tag's JSON object to the new one;
stored bytes are never rewritten. Results kept in commits (for durable
idempotency) are upcast the same way, by their `msg_type`. The fast path decodes
straight into the current types and only falls back to upcasting when that fails.
"""
from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

import msgspec

from events.ledger import Commit, Event

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[str, Upcaster] = {}          # old event `type` tag → function giving the current object
RESULT_UPCASTERS: dict[str, Upcaster] = {}   # result `msg_type` → function giving the current object
_ANY = msgspec.json.Decoder()
_COMMIT_DECODER = msgspec.json.Decoder(Commit)   # private: `decode_commit` is the only way in
_EVENT_DECODER = msgspec.json.Decoder(Event)
_BY_TAG = {cls.__struct_config__.tag: cls for cls in typing.get_args(Event)}


def register(old_type: str) -> Callable[[Upcaster], Upcaster]:
    def add(fn: Upcaster) -> Upcaster:
        UPCASTERS[old_type] = fn
        return fn
    return add


def register_result(msg_type: str) -> Callable[[Upcaster], Upcaster]:
    def add(fn: Upcaster) -> Upcaster:
        RESULT_UPCASTERS[msg_type] = fn
        return fn
    return add


def decode_commit(data: bytes) -> Commit:
    """A stored commit in today's types. Raises `msgspec.DecodeError` for bytes that are not a commit."""
    try:
        return _COMMIT_DECODER.decode(data)
    except msgspec.ValidationError:
        raw = _ANY.decode(data)
        if not isinstance(raw, dict):
            raise
        raw["events"] = [_upcast(e, UPCASTERS, "type") for e in raw.get("events") or []]
        raw["results"] = [_upcast(r, RESULT_UPCASTERS, "msg_type") for r in raw.get("results") or []]
        return msgspec.convert(raw, Commit, strict=False)


def decode_event(data: bytes) -> Event:
    """One stored event (as the read side slices them out of a commit), upcast if its shape is old."""
    try:
        return _EVENT_DECODER.decode(data)
    except msgspec.ValidationError:
        raw = _ANY.decode(data)
        if not isinstance(raw, dict):
            raise
        obj = _upcast(raw, UPCASTERS, "type")
        # Into its own type when the tag names one: converting into the union re-reads all its types each call.
        return msgspec.convert(obj, _BY_TAG.get(obj.get("type"), Event), strict=False)  # type: ignore[arg-type]


def tags_of(tag: str) -> list[str]:
    """Every tag a stored event of `tag`'s type may carry: today's first, then the old ones upcast to it
    (`tag` may be either). Rows written before a type was replaced keep its old tag until a rebuild."""
    today = FLAT_FACTS.get(tag, tag)
    return [today, *(old for old, new in FLAT_FACTS.items() if new == today)]


def upcast_event(obj: Any) -> Any:
    """One stored event's JSON object (as `msgspec.json.decode` gives it) in today's shape: for readers that
    decode into structs of their own (the lean rebuild) and must upcast as every reader does."""
    return _upcast(obj, UPCASTERS, "type")


class _CommitId(msgspec.Struct):
    commit_id: str = ""


_COMMIT_ID = msgspec.json.Decoder(_CommitId)


def commit_id(data: bytes) -> str:
    """The id of a stored commit, read without decoding its events (empty for what is not one)."""
    try:
        return _COMMIT_ID.decode(data).commit_id
    except msgspec.DecodeError:
        return ""


def _upcast(obj: Any, upcasters: dict[str, Upcaster], tag: str) -> Any:
    seen = set()
    while isinstance(obj, dict) and obj.get(tag) in upcasters and obj[tag] not in seen:
        seen.add(obj[tag])
        obj = upcasters[obj[tag]](obj)
    return obj


# The flat settlement facts (tags of before ADR 0017): the settlement's and the hospital's fields were copied
# next to the decision figures. Frozen lists of that old shape, not today's struct fields: a field added to
# `Settlement` later was never in a flat event, and its default fills it.
FLAT_SETTLEMENT = ("setl_id", "mdtrt_id", "psn_no", "admdvs", "insutype", "med_type", "fixmedins_code", "begndate",
                   "enddate", "setl_time", "dise_codg", "medfee_sumamt", "fulamt_ownpay_amt", "inscp_scp_amt",
                   "hifp_pay", "oth_pay", "chronic_mgmt", "special_drug")
FLAT_HOSPITAL = ("designated", "in_province", "ooc_class", "serious_disease_designated")
_MOVED = frozenset(FLAT_SETTLEMENT) - {"setl_id", "psn_no"} | frozenset(FLAT_HOSPITAL)  # the keys stay on top too
FLAT_FACTS = {"hospital_stay_settled": "hospital_stay_settled_v2",
              "outpatient_visit_settled": "outpatient_visit_settled_v2"}


@register("hospital_stay_settled")
@register("outpatient_visit_settled")
def _settlement_embedded(old: dict[str, Any]) -> dict[str, Any]:
    """Flat facts → the facts embedding the inbound settlement and the hospital snapshot (ADR 0017). The
    envelope (ids, pack, `hash`, `prev_hash`) is kept as stored: the chain and seal check stored bytes."""
    new = {k: v for k, v in old.items() if k not in _MOVED}
    new["type"] = FLAT_FACTS[old["type"]]
    new["settlement"] = {"msg_type": "settlement", **{k: old[k] for k in FLAT_SETTLEMENT if k in old}}
    new["hospital"] = {k: old[k] for k in FLAT_HOSPITAL if k in old}
    return new


@register_result("identity_result")
@register_result("year_close_result")
def _adjustments_were_a_count(old: dict[str, Any]) -> dict[str, Any]:
    """Before integration.md §2 "Results that cause adjustments", `adjustments` was their number; the
    adjustments themselves were stored as the results after it, so the list is not lost."""
    if isinstance(old.get("adjustments"), int):
        old = {**old, "adjustments": []}
    return old
