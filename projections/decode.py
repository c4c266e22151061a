"""Stream bytes → `Message`: one decode per event, keeping each event's stored bytes.

The commit is read with its events and results as raw JSON slices, so the audit trail stores
exactly the bytes that were hashed, sealed and stored, each event is decoded once, and `ledger
restore` can put the commit back as it was. A message the ledger did not seal for its subject
raises `events.chain.Unsealed` (ADR 0010).
"""
from __future__ import annotations

from events.chain import check_sealed, read_view
from events.upcast import decode_event
from projections.model import Message

PERSON_PREFIX = "ledger.person."


def person_key_of(subject: str) -> str | None:
    return subject[len(PERSON_PREFIX):] if subject.startswith(PERSON_PREFIX) else None


def decode_message(seq: int, subject: str, data: bytes, seal_key: bytes) -> Message:
    view = read_view(data)
    raws = [bytes(r) for r in view.events]
    events = [decode_event(r) for r in raws]
    check_sealed(seal_key, subject, view, raws, [e.hash for e in events])     # the hashes the events claim
    return Message(seq, subject, person_key_of(subject), events, raws, view.commit_id, view.correlation_id,
                   bytes(view.results), view.seal, None, len(data))
