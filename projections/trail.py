"""The audit trail (every event with its hashes and payload) and the dead letters.

Both are append-only: one row per event, keyed by (stream sequence, index in
the decision), so a supervisor reads a person's chain in the order it was
written and can check each link against `events.chain`. Beside the events, one
row per commit keeps what the events lack to put the commit back as written
(its results and seal: `ledger restore`), and a message the ledger did not seal
is recorded as forged instead of being folded (ADR 0010).
"""
from __future__ import annotations

from events import ledger as ev
from projections.model import Insert, Message, Op, Table

LEDGER_EVENT = Table("ledger_event", ("seq", "idx"), (
    "seq", "idx", "subject", "person_key", "type", "event_id", "correlation_id", "causation_id", "pack",
    "pack_version", "year", "prev_hash", "hash", "recorded_at", "payload"))
LEDGER_COMMIT = Table("ledger_commit", ("seq",), (
    "seq", "subject", "person_key", "commit_id", "correlation_id", "results", "seal"))
FORGED_MESSAGE = Table("forged_message", ("seq",), ("seq", "subject", "person_key", "reason", "bytes"))
DEAD_LETTER = Table("dead_letter", ("event_id",), (
    "event_id", "seq", "code", "message", "msg_type", "source", "raw", "redrive_of", "correlation_id",
    "recorded_at"))


def fold_trail(state: None, msg: Message) -> list[Op]:
    if msg.forged is not None:
        return [Insert(FORGED_MESSAGE, (msg.seq, msg.subject, msg.person_key, msg.forged, msg.size))]
    return [
        *(Insert(LEDGER_EVENT, (msg.seq, idx, msg.subject, msg.person_key, ev.event_type(e), e.event_id,
                                e.correlation_id, e.causation_id, e.pack, e.pack_version, getattr(e, "year", None),
                                e.prev_hash, e.hash, e.recorded_at, raw))
          for idx, (e, raw) in enumerate(zip(msg.events, msg.raw_events))),
        Insert(LEDGER_COMMIT, (msg.seq, msg.subject, msg.person_key, msg.commit_id, msg.correlation_id, msg.results,
                               msg.seal)),
    ]


def fold_dead_letters(state: None, msg: Message) -> list[Op]:
    return [
        Insert(DEAD_LETTER, (e.event_id, msg.seq, e.code, e.message, e.msg_type, e.source, e.raw, e.redrive_of,
                             e.correlation_id, e.recorded_at))
        for e in msg.events if isinstance(e, ev.MessageRejected)
    ]
