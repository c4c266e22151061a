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
from projections.sql import NULL, csv_line, escape_bytes, escaped_row, text_row

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


# --- rebuilds: the same rows from lean events, as COPY text (ADR 0004) ------------------

TRAIL_NEEDS = {ev.LedgerEvent: ("event_id", "correlation_id", "causation_id", "pack", "pack_version", "year",
                                "prev_hash", "hash", "recorded_at")}
DEAD_LETTER_NEEDS = {ev.MessageRejected: ("event_id", "code", "message", "msg_type", "source", "raw", "redrive_of",
                                          "correlation_id", "recorded_at")}


def trail_lines(seq: int, subject: str, person_key: str | None, events: list, raws: list, escape: bool) -> list[bytes]:
    """`fold_trail`'s rows as COPY text: each event's envelope, then its stored bytes as the json payload."""
    if escape:
        return [b"%s\t%s" % (escaped_row(_head(seq, idx, subject, person_key, e)).encode(), escape_bytes(bytes(raw)))
                for idx, (e, raw) in enumerate(zip(events, raws))]
    first, then = f"{seq}\t", f"\t{subject}\t{NULL if person_key is None else person_key}\t"
    out = []
    for idx, (e, raw) in enumerate(zip(events, raws)):          # text_row by hand: the hottest line of a rebuild
        pack, version, year, at = e.pack, e.pack_version, getattr(e, "year", None), e.recorded_at
        out.append(f"{first}{idx}{then}{e.TYPE}\t{e.event_id}\t{e.correlation_id}\t{e.causation_id}\t"
                   f"{NULL if pack is None else pack}\t{NULL if version is None else version}\t"
                   f"{NULL if year is None else year}\t{e.prev_hash}\t{e.hash}\t{NULL if at is None else at}\t"
                   .encode() + raw)
    return out


def commit_line(msg: Message, escape: bool) -> bytes:
    """`fold_trail`'s `ledger_commit` row as COPY text: the envelope, the results' stored bytes, the seal."""
    head = (msg.seq, msg.subject, msg.person_key, msg.commit_id, msg.correlation_id)
    if escape:
        return b"%s\t%s\t%s" % (escaped_row(head).encode(), escape_bytes(msg.results), msg.seal.encode())
    return b"%s\t%s\t%s" % (text_row(head).encode(), msg.results, msg.seal.encode())


def forged_line(msg: Message) -> bytes:
    """`fold_trail`'s `forged_message` row as COPY text (always escaped: the reason quotes what it read)."""
    return escaped_row((msg.seq, msg.subject, msg.person_key, msg.forged, msg.size)).encode()


def _head(seq: int, idx: int, subject: str, person_key: str | None, e) -> tuple:
    return (seq, idx, subject, person_key, e.TYPE, e.event_id, e.correlation_id, e.causation_id, e.pack,
            e.pack_version, getattr(e, "year", None), e.prev_hash, e.hash, e.recorded_at)


def dead_letter_lines(seq: int, events: list) -> list[bytes]:
    """`fold_dead_letters`'s rows as COPY CSV (always escaped: the raw message is bytea, its text anyone's)."""
    return [csv_line((e.event_id, seq, e.code, e.message, e.msg_type, e.source, e.raw, e.redrive_of,
                      e.correlation_id, e.recorded_at), escape=True)
            for e in events if e.TYPE == "message_rejected"]
