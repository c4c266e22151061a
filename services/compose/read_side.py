"""What `ledger run` puts beside the adjudicator: the read side, and the HTTP API's dependencies on both."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.api.deps import ApiDeps
from services.compose.ledger import Ledger


async def start_read_side(ledger: Ledger, database_url: str, tokens: Mapping[str, str],
                          **monitor: Any) -> tuple[Any, ApiDeps]:
    """The read side next to `ledger`, and what the HTTP API is given: migrations, a first integrity
    check — told to the adjudicator before it takes a message (ADR 0010) — then the projector and
    the monitor in the background. ``monitor``: IntegrityMonitor's every / page / page_every."""
    from projections.service import ReadSide
    read_side = await ReadSide(database_url, ledger.js, ledger.seal_key, metrics=ledger.metrics,
                               replicas=ledger.settings.stream_replicas, project=ledger.options.projector,
                               **monitor).start()
    if ledger.guard is not None:
        await ledger.guard.refresh()
    return read_side, api_deps(ledger, tokens, read_side)


def api_deps(ledger: Ledger, tokens: Mapping[str, str], read_side: Any = None) -> ApiDeps:
    """The HTTP API over `ledger`: messages through its adjudicator (what NATS could not carry is
    dead-lettered as on NATS), reads from its pool, /ready from its read side's checks."""
    from services.nats import oversize

    def submit(raw: bytes, source: str, transport: str) -> Any:
        return oversize.decide(ledger.adjudicator, raw, source, transport, ledger.nc.max_payload)

    def dead_letter(raw: bytes, source: str, code: str, message: str, transport: str) -> Any:
        return oversize.dead_letter(ledger.adjudicator, raw, source, code, message, transport)

    checks = [read_side.lag_check, read_side.integrity_check] if read_side is not None else []
    return ApiDeps(submit=submit, dead_letter=dead_letter, tokens=tokens, metrics=ledger.metrics,
                   publish_extra=ledger.publish_extra, taking_messages=lambda: ledger.taking_messages,
                   nc=ledger.nc, js=ledger.js, db=ledger.db, person_key=ledger.person_key, settings=ledger.settings,
                   ready_checks=checks, seal_key=ledger.seal_key,
                   integrity=read_side.monitor if read_side is not None else None)
