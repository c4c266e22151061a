"""Reading old events: upcasters turn a stored event of an older shape into the current one.

Additive changes need none (new fields have defaults). When an event type is
replaced, register a function from the old tag's JSON object to the new one;
stored bytes are never rewritten. The fast path decodes straight into the
current types and only falls back to upcasting when that fails.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from events.ledger import COMMIT_DECODER, Commit

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[str, Upcaster] = {}     # old `type` tag → function giving the current object
_ANY = msgspec.json.Decoder()


def register(old_type: str) -> Callable[[Upcaster], Upcaster]:
    def add(fn: Upcaster) -> Upcaster:
        UPCASTERS[old_type] = fn
        return fn
    return add


def decode_commit(data: bytes) -> Commit:
    try:
        return COMMIT_DECODER.decode(data)
    except msgspec.ValidationError:
        raw = _ANY.decode(data)
        raw["events"] = [_upcast(e) for e in raw.get("events", [])]
        return msgspec.convert(raw, Commit, strict=False)


def _upcast(event: dict[str, Any]) -> dict[str, Any]:
    seen = set()
    while event.get("type") in UPCASTERS and event["type"] not in seen:
        seen.add(event["type"])
        event = UPCASTERS[event["type"]](event)
    return event
