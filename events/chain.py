"""Tamper evidence: each event hashes its canonical bytes and names its predecessor's hash."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

import msgspec

from events.ledger import LedgerEvent

GENESIS = ""
_ENCODER = msgspec.json.Encoder()


def event_hash(event: LedgerEvent) -> str:
    """SHA-256 over the event's canonical JSON with its own `hash` blanked."""
    return hashlib.sha256(_ENCODER.encode(msgspec.structs.replace(event, hash=""))).hexdigest()


def seal(events: Iterable[LedgerEvent], prev_hash: str) -> tuple[list[LedgerEvent], str]:
    """Chain `events` after `prev_hash`; returns the sealed events and the new head."""
    sealed = []
    for event in events:
        event = msgspec.structs.replace(event, prev_hash=prev_hash, hash="")
        prev_hash = hashlib.sha256(_ENCODER.encode(event)).hexdigest()
        sealed.append(msgspec.structs.replace(event, hash=prev_hash))
    return sealed, prev_hash


class ChainBreak(msgspec.Struct, frozen=True):
    index: int
    event_id: str
    expected_prev: str
    found_prev: str
    hash_ok: bool


def first_break(events: Iterable[LedgerEvent], prev_hash: str = GENESIS) -> ChainBreak | None:
    """Walk one person's chain; the first event whose links or hash do not hold."""
    for index, event in enumerate(events):
        hash_ok = event_hash(event) == event.hash
        if event.prev_hash != prev_hash or not hash_ok:
            return ChainBreak(index, event.event_id, prev_hash, event.prev_hash, hash_ok)
        prev_hash = event.hash
    return None
