"""Events that are not one person's: reference data (`ledger.ref.*`), dead letters, global keys and the
stream's own integrity. Part of `events.ledger`'s `Event` union and importable from there."""
from __future__ import annotations

import datetime as dt

from events.envelope import LedgerEvent


# --- the stream's own integrity (ledger.ref.integrity; ADR 0010) ---------------------

class SequenceNotRestored(LedgerEvent, tag="sequence_not_restored"):
    """Stands where `ledger restore` had no sealed commit to put back, so later sequences keep their numbers."""
    seq: int
    subject: str
    reason: str


class StreamRestored(LedgerEvent, tag="stream_restored"):
    """`ledger restore` re-published the stream from the read models' copy (and the old stream's sealed tail)."""
    source: str
    restored_upto: int
    not_restored: int
    findings: list[str]


class LossAccepted(LedgerEvent, tag="loss_accepted"):
    """An operator accepted that the stream lost what the read models remember; the read models follow it again."""
    reason: str
    findings: list[str]
    stream_created_before: str | None
    high_water_before: int
    last_seq: int


# --- reference data -----------------------------------------------------------------

class KeyClaimed(LedgerEvent, tag="key_claimed"):
    """A global key taken by one person (integration.md §2 "Keys are global"); stored on
    `ledger.ref.key.<key_hash>` in the same atomic batch as that person's decision (ADR 0013)."""
    kind: str                      # "setl_id" | "grant_id"
    key_hash: str                  # keyed hash of the key, as in the subject
    person_key: str                # who holds it


class MedinsRecorded(LedgerEvent, tag="medins_recorded"):
    fixmedins_code: str
    fixmedins_name: str
    admdvs: str
    designated: bool
    in_province: bool
    ooc_class: str | None
    serious_disease_designated: bool


class YearClosed(LedgerEvent, tag="year_closed"):
    admdvs: str
    year: int


class PackActivated(LedgerEvent, tag="pack_activated"):
    pack_id: str
    version: str
    digest: str
    effective_from: dt.date


class MessageRejected(LedgerEvent, tag="message_rejected"):
    """A dead letter: kept with its raw bytes so a supervisor can read and re-drive it."""
    code: str
    message: str
    msg_type: str | None
    raw: bytes
    source: str = ""              # transport and subject it came on
    redrive_of: str | None = None
