"""What a decision is: events to append and results to answer, plus where they go."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import msgspec

from events.ledger import LedgerEvent
from events.results import Outbound, Reason


class Context(msgspec.Struct, frozen=True):
    """The only impure inputs of a decision, passed in: the clock and the message's identity."""
    now: dt.datetime
    correlation_id: str
    causation_id: str = ""


SETL_ID, GRANT_ID = "setl_id", "grant_id"     # the global keys (integration.md §2 "Keys are global")


@dataclass(slots=True)
class Decision:
    events: list[LedgerEvent] = field(default_factory=list)
    results: list[Outbound] = field(default_factory=list)
    psn_no: str | None = None        # the person whose subject takes the events; None for reference data
    ref_kind: str | None = None      # `ledger.ref.<kind>` for reference events
    # Global keys this decision takes for its person, stored atomically with its events: (kind, key).
    claims: list[tuple[str, str]] = field(default_factory=list)


class Rejection(Exception):
    """Raised inside decision code; the engine turns it into a `rejected` result and a dead letter."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.reason = Reason(code, message)


def stamp(events: list[LedgerEvent], ctx: Context, pack_id: str | None, pack_version: str | None) -> list[LedgerEvent]:
    """Fill the envelope every event carries (design.md §2)."""
    return [
        msgspec.structs.replace(
            e, event_id=f"{ctx.correlation_id}:{i}", correlation_id=ctx.correlation_id,
            causation_id=ctx.causation_id or ctx.correlation_id, pack=pack_id or e.pack,
            pack_version=pack_version or e.pack_version, recorded_at=ctx.now)
        for i, e in enumerate(events)
    ]
