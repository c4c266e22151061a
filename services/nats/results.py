"""Where results go (integration.md §2–§3) and the answer for a message that could not be decided.

* the result of a message of type ``<msg_type>`` → ``ledger.out.<msg_type>_result``
  (e.g. ``settlement`` → ``ledger.out.settlement_result``, ``enrolment`` →
  ``ledger.out.enrolment_result`` carrying a ``subsidy_result``);
* a ``settlement_adjustment`` → ``ledger.out.settlement_adjustment``;
* a ``rejected`` (bad JSON, unknown ``msg_type``) → ``ledger.out.rejected``.

Over request/reply and HTTP the first result is the answer, and it carries the
adjustments it caused in `adjustments` (integration.md §2); those adjustments
are also published on ``ledger.out.settlement_adjustment`` whatever the
transport, so a platform listening there sees every one (ADR 0003).
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from events.results import RESULT_TYPE_FOR, Outbound, encode_result, result_tag
from events.subjects import OUT_PREFIX
from services.nats.fast import headers_bytes, send

_MSG_TYPE_OF = {cls.__struct_config__.tag: msg_type for msg_type, cls in RESULT_TYPE_FOR.items()}  # type: ignore[attr-defined]
_SUBJECTS = {tag: f"{OUT_PREFIX}{msg_type}_result" for tag, msg_type in _MSG_TYPE_OF.items()}
_SUBJECTS["settlement_adjustment"] = f"{OUT_PREFIX}settlement_adjustment"
_SUBJECTS["rejected"] = f"{OUT_PREFIX}rejected"

ERROR_HEADER = "Ledger-Error"


def result_subject(result: Outbound) -> str:
    return _SUBJECTS[result_tag(result)]


class Unavailable(msgspec.Struct, frozen=True, tag_field="msg_type", tag="error"):
    """Not a result: the message was not decided (nothing stored); send it again later."""
    result: str
    reason: dict[str, str]


def not_decided_now() -> tuple[type[BaseException], ...]:
    """Errors that say the message could not be decided *now* (NATS or JetStream away, an ack not in
    time), not that deciding it crashed: it is retried as long as it takes, never a `poison_message`."""
    from nats import errors as nats_errors
    from nats.js import errors as js_errors

    from services.nats.publisher import NotConnected
    return (asyncio.TimeoutError, NotConnected, nats_errors.ConnectionClosedError, nats_errors.TimeoutError,
            nats_errors.NoRespondersError, nats_errors.OutboundBufferLimitError, js_errors.ServiceUnavailableError,
            js_errors.NoStreamResponseError, OSError)


def unavailable(message: str) -> bytes:
    return msgspec.json.encode(Unavailable(result="error", reason={"code": "unavailable", "message": message}))


class ResultPublisher:
    """Publishes results on core NATS (a stream on ``ledger.out.>`` may capture them for the platform)."""

    def __init__(self, nc: Any):
        self.nc = nc

    async def publish(self, results: Iterable[Outbound], headers: Mapping[str, str] | None = None) -> None:
        hdrs = headers_bytes(headers) if headers else None
        for result in results:
            await send(self.nc, result_subject(result), encode_result(result), hdrs)

    async def publish_extra(self, results: list[Outbound]) -> None:
        """The results after the first (adjustments), for transports that answered the first directly."""
        if len(results) > 1:
            await self.publish(results[1:])
