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
    sealed, _, head = seal_stored(events, prev_hash)
    return sealed, head


def seal_stored(events: Iterable[LedgerEvent], prev_hash: str) -> tuple[list[LedgerEvent], list[msgspec.Raw], str]:
    """`seal`, plus each sealed event's JSON as it will be stored (to encode a commit around, without
    encoding its events again): the hashed bytes with the own hash filled in, which is also what
    `stored_hash_ok` checks."""
    sealed, stored = [], []
    for event in events:
        event = msgspec.structs.replace(event, prev_hash=prev_hash, hash="")
        canonical = _ENCODER.encode(event)
        prev_hash = hashlib.sha256(canonical).hexdigest()
        sealed.append(msgspec.structs.replace(event, hash=prev_hash))
        stored.append(msgspec.Raw(canonical.replace(b'"hash":""', b'"hash":"' + prev_hash.encode() + b'"', 1)))
    return sealed, stored, prev_hash


class ChainBreak(msgspec.Struct, frozen=True):
    index: int
    event_id: str
    expected_prev: str
    found_prev: str
    hash_ok: bool


class _Link(msgspec.Struct):
    """What the chain needs of any event, whatever its type or version."""
    event_id: str = ""
    prev_hash: str = ""
    hash: str = ""


_LINK = msgspec.json.Decoder(_Link)


def stored_hash_ok(stored: bytes, claimed: str) -> bool:
    """Whether an event's JSON as written hashes to `claimed` once its own hash is blanked.

    The bytes written are checked, not a re-encoding of the decoded event: an event written
    before a field was added re-encodes with that field's default and would no longer match.
    (Only the own-hash key can match: in ``"prev_hash":`` a ``_``, not a quote, precedes ``hash``.)
    """
    own = b'"hash":"' + claimed.encode() + b'"'
    blanked = stored.replace(own, b'"hash":""', 1)
    return blanked != stored and hashlib.sha256(blanked).hexdigest() == claimed


def head_of(stored: bytes) -> str:
    """The hash an event as stored claims: the head of its chain once it is checked."""
    return _LINK.decode(stored).hash


def first_break(stored: Iterable[bytes], prev_hash: str = GENESIS) -> ChainBreak | None:
    """Walk one person's chain over its events as stored; the first whose link or hash does not hold."""
    for index, raw in enumerate(stored):
        link = _LINK.decode(raw)
        hash_ok = stored_hash_ok(raw, link.hash)
        if link.prev_hash != prev_hash or not hash_ok:
            return ChainBreak(index, link.event_id, prev_hash, link.prev_hash, hash_ok)
        prev_hash = link.hash
    return None
