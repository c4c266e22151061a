"""The fields every ledger event carries: ids, the pack it was decided under, and its hash-chain links."""
from __future__ import annotations

import datetime as dt

import msgspec


class LedgerEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    event_id: str = ""
    correlation_id: str = ""
    causation_id: str = ""
    pack: str | None = None
    pack_version: str | None = None
    recorded_at: dt.datetime | None = None
    prev_hash: str = ""
    hash: str = ""
