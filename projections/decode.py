"""Stream bytes → `Message`: one decode per event, keeping each event's stored bytes.

The commit is read with its events as raw JSON slices (results are skipped:
read models are built from events only), so the audit trail stores exactly
the bytes that were hashed-and-stored, and each event is decoded once.
"""
from __future__ import annotations

import msgspec

from events.upcast import decode_event
from projections.model import Message

PERSON_PREFIX = "ledger.person."


class _RawCommit(msgspec.Struct):
    events: list[msgspec.Raw]


_COMMIT = msgspec.json.Decoder(_RawCommit)


def person_key_of(subject: str) -> str | None:
    return subject[len(PERSON_PREFIX):] if subject.startswith(PERSON_PREFIX) else None


def stored_events(data: bytes) -> list[bytes]:
    """Each event of a stored commit exactly as written (results skipped)."""
    return [bytes(r) for r in _COMMIT.decode(data).events]


def decode_message(seq: int, subject: str, data: bytes) -> Message:
    raws = stored_events(data)
    return Message(seq, subject, person_key_of(subject), [decode_event(r) for r in raws], raws)
