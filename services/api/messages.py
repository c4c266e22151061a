"""``POST /v1/messages``: one inbound message in, its result out — the same path as NATS (integration.md §3).

The body is read as raw bytes and handed to `Adjudicator.submit` exactly as a
NATS payload would be, so the three transports cannot disagree: Litestar does
not parse or validate it (the OpenAPI request body is declared by hand).
Answers:

* 200 with the message's result (``settled``, ``duplicate``, or ``rejected`` by
  a rule); adjustments that follow it go to ``ledger.out.settlement_adjustment``;
* 400 with the same rejected shape when the body is not a readable message
  (not JSON, not an object, unknown ``msg_type``, missing or mistyped fields,
  too large, not UTF-8, nested too deep: codes ``invalid_message`` /
  ``unknown_msg_type``); dead-lettered like any rejection. A body of any size
  is read in bounded memory (`events.limits.Body`): one over the message
  limit is dead-lettered from its first bytes with its size and SHA-256;
* 413 with the same rejected shape (code ``message_too_large``) for a message whose
  decision NATS cannot carry (over its ``max_payload``), dead-lettered the same way;
* 503 with an ``unavailable`` error body when it could not be decided now
  (nothing stored; send it again — a decided key answers ``duplicate``).

Role ``platform``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from litestar import Request, Response, Router, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema

from events import codes
from events.limits import Body
from events.results import Outbound, Result, encode_result
from services.adjudicator.service import redact
from services.api.deps import ApiDeps
from services.api.responses import AUTH
from services.nats.results import ERROR_HEADER, Unavailable, unavailable

log = structlog.get_logger(component="ledger.http")

UNREADABLE = frozenset({codes.INVALID_MESSAGE, codes.UNKNOWN_MSG_TYPE})
_JSON = "application/json"
_MSG_TYPES = ["medins", "psn_identity", "enrolment", "settlement", "settlement_cancel", "year_close", "tilted_grant"]


def status_for(result: Outbound) -> int:
    reason = getattr(result, "reason", None)
    if getattr(result, "result", None) == "rejected" and reason is not None:
        if reason.code in UNREADABLE:
            return 400
        if reason.code == codes.MESSAGE_TOO_LARGE:
            return 413
    return 200


_RESPONSES = {
    200: ResponseSpec(Result, description="The result: `settled`, `duplicate`, or `rejected` by a rule",
                      generate_examples=False),
    400: ResponseSpec(Result, description="A `rejected` result: not a readable message", generate_examples=False),
    503: ResponseSpec(Unavailable, description="Not decided now (nothing stored): send it again",
                      generate_examples=False),
    **AUTH}


@dataclass
class _SubmitOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True, description="One inbound message of integration.md §1, tagged by `msg_type`.",
            content={_JSON: OpenAPIMediaType(schema=Schema(
                type=OpenAPIType.OBJECT, required=["msg_type"],
                properties={"msg_type": Schema(type=OpenAPIType.STRING, enum=_MSG_TYPES)},
                additional_properties=True))})


@post("/", status_code=200, request_max_body_size=None, summary="Submit one inbound message and get its result",
      responses=_RESPONSES,
      description="The result of integration.md §2 (e.g. `settlement_result`); 400 for an unreadable message, "
                  "503 when it could not be decided now.",
      operation_class=_SubmitOperation, media_type=_JSON)
async def submit_message(request: Request[Any, Any, Any], deps: ApiDeps) -> Response[bytes]:
    nc = deps.nc
    if nc is not None and not nc.is_connected:      # nothing can be stored now: say so at once
        return _unavailable("NATS is not connected; not decided, send again")
    body = Body()                    # bounded memory however long the body: it gets its result
    async for chunk in request.stream():
        body.add(chunk)
    raw = body.whole
    try:
        if raw is not None:
            results = await deps.submit(raw, "http", "http")
        else:
            raw = bytes(body.head)
            results = await deps.dead_letter(raw, "http", codes.INVALID_MESSAGE, body.refusal(), "http")
    except Exception as exc:
        log.error("http_submit_failed", error=redact(repr(exc), raw))
        return _unavailable(redact(f"not decided, send again: {exc!r}", raw))
    if deps.publish_extra is not None and len(results) > 1:
        await deps.publish_extra(results)
    return Response(encode_result(results[0]), status_code=status_for(results[0]), media_type=_JSON)


def _unavailable(message: str) -> Response[bytes]:
    return Response(unavailable(message), status_code=503, media_type=_JSON, headers={ERROR_HEADER: "unavailable"})


def messages_router() -> Router:
    return Router(path="/v1/messages", route_handlers=[submit_message], opt={"roles": ("platform",)},
                  tags=["messages"])
