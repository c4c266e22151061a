"""Messages too big for NATS become dead letters (``message_too_large``), not a dropped connection.

Why: the server closes a client that sends more than its ``max_payload``, with
every request of that connection in flight. `services.nats.fast.send` refuses such a
publish (``MaxPayloadError``) before a byte is written; this turns that refusal
into a result. Two ways in:

* an inbound message bigger than ``max_payload`` (only HTTP can carry one; NATS
  would not deliver it) is refused before it is decided, as a NATS transport
  would: the three transports cannot disagree;
* a message whose decision does not fit one commit (a dead letter carries the
  raw bytes, base64: a message near the limit makes a commit over it; a huge
  ``medins`` list) is refused when its commit is published.

Either way the dead letter keeps the message's first bytes (at most a quarter of
``max_payload``, 64 KiB), its size and its SHA-256, so it can be found and
fetched again from the sender; the rest cannot be stored in the stream at all.
"""
from __future__ import annotations

import hashlib
from typing import Any

from nats.errors import MaxPayloadError

from events import codes
from events.results import Outbound
from services.adjudicator.service import Adjudicator

KEEP_AT_MOST = 64 * 1024


async def decide(adjudicator: Adjudicator, raw: bytes, source: str, transport: str,
                 max_payload: int | None = None) -> list[Outbound]:
    """`Adjudicator.submit`, except that what NATS cannot carry is dead-lettered as ``message_too_large``."""
    if max_payload is not None and len(raw) > max_payload:
        return await too_large(adjudicator, raw, source, transport, max_payload,
                               f"the message is {len(raw)} bytes, over the {max_payload}-byte limit of NATS")
    try:
        return await adjudicator.submit(raw, source, transport)
    except MaxPayloadError:
        return await too_large(adjudicator, raw, source, transport, max_payload,
                               "the commit deciding it is over the NATS max_payload")


async def too_large(adjudicator: Adjudicator, raw: bytes, source: str, transport: str,
                    max_payload: int | None, why: str) -> list[Outbound]:
    limit = max_payload or _max_payload(adjudicator)
    keep = raw[:min(KEEP_AT_MOST, limit // 4)]
    message = (f"{why}; kept its first {len(keep)} bytes; size {len(raw)}, "
               f"sha256 {hashlib.sha256(raw).hexdigest()}")
    try:
        return await adjudicator.dead_letter(raw, source, codes.MESSAGE_TOO_LARGE, message, transport, keep=keep)
    except MaxPayloadError:                    # a tiny max_payload: keep the record without the bytes
        return await adjudicator.dead_letter(raw, source, codes.MESSAGE_TOO_LARGE, message, transport, keep=b"")


async def dead_letter(adjudicator: Adjudicator, raw: bytes, source: str, code: str, message: str,
                      transport: str = "") -> list[Outbound]:
    """`Adjudicator.dead_letter`, keeping fewer of the raw bytes when the record itself would not fit NATS
    (a body refused as too long keeps its first 64 KiB, more than a small ``max_payload`` carries)."""
    try:
        return await adjudicator.dead_letter(raw, source, code, message, transport)
    except MaxPayloadError:
        keep = raw[:min(KEEP_AT_MOST, _max_payload(adjudicator) // 4)]
        return await adjudicator.dead_letter(raw, source, codes.MESSAGE_TOO_LARGE,
                                             f"{message}; kept its first {len(keep)} bytes", transport, keep=keep)


def _max_payload(adjudicator: Adjudicator) -> int:
    publisher: Any = getattr(adjudicator.handler.store, "publisher", None)
    nc = getattr(publisher, "nc", None)
    return int(getattr(nc, "max_payload", 0) or 1024 * 1024)
