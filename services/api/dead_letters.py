"""Dead letters: list them with their redrive state; redrive one through the one decision path.

A redrive hands the stored raw bytes to `deps.submit` — the same Handler every
transport uses — and records what came back in `dead_letter_redrive` (kept
across rebuilds: it is not derived from the stream). If the message is
rejected again, that rejection is a new dead letter on the stream like any
other.
"""
from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import msgspec
from litestar import Response, Router, get, post
from litestar.params import Parameter

from events.results import RESULT_ENCODER
from services.api.deps import ApiDeps
from services.api.read_common import (EXCEPTION_HANDLERS, ApiError, check_limit, db_of, lag_of, not_found,
                                      parse_seq_cursor, with_lag)
from services.api.responses import errors


class Redrive(msgspec.Struct):
    attempted_at: dt.datetime
    outcome: str
    ok: bool


class DeadLetterView(msgspec.Struct):
    id: str                          # the MessageRejected event_id
    seq: int
    code: str
    message: str | None
    msg_type: str | None
    source: str | None
    recorded_at: dt.datetime | None
    raw: str                         # the bytes as received, UTF-8 with replacement
    raw_base64: str
    redrive_state: str               # pending | redriven | failed
    redrives: list[Redrive]


class DeadLettersPage(msgspec.Struct):
    dead_letters: list[DeadLetterView]
    next_cursor: str | None
    projection_lag: int | None


class RedriveOutcome(msgspec.Struct):
    id: str
    outcome: str
    ok: bool
    results: list[Any]


_LIST = """
SELECT d.*, coalesce((SELECT json_agg(json_build_object('attempted_at', r.attempted_at, 'outcome', r.outcome,
                                                         'ok', r.ok) ORDER BY r.id)
                      FROM dead_letter_redrive r WHERE r.dead_letter_id = d.event_id), '[]') AS redrives
FROM dead_letter d WHERE ($1::text IS NULL OR d.code = $1) AND d.seq > $2 ORDER BY d.seq LIMIT $3"""
_REDRIVES = msgspec.json.Decoder(list[Redrive])


def _state(redrives: list[Redrive]) -> str:
    if not redrives:
        return "pending"
    return "redriven" if redrives[-1].ok else "failed"


def _view(r: Any) -> DeadLetterView:
    redrives = _REDRIVES.decode(r["redrives"])
    raw = bytes(r["raw"])
    return DeadLetterView(r["event_id"], r["seq"], r["code"], r["message"], r["msg_type"], r["source"],
                          r["recorded_at"], raw.decode("utf-8", "replace"), base64.b64encode(raw).decode(),
                          _state(redrives), redrives)


async def read_dead_letters(deps: ApiDeps, code: str | None = None, wanted: str | None = None, limit: int = 100,
                            cursor: str | None = None) -> DeadLettersPage:
    """One page of dead letters, oldest first, each with its redrives; `wanted` filters by redrive state."""
    check_limit(limit)
    after = parse_seq_cursor(cursor)
    if wanted not in (None, "pending", "redriven", "failed"):
        raise ApiError(400, "invalid_parameter", "state must be pending, redriven or failed")
    async with db_of(deps).acquire() as conn:
        rows = await conn.fetch(_LIST, code, after, limit + 1)
        checkpoint = await conn.fetchval("SELECT seq FROM projection_checkpoint WHERE projection = 'dead_letters'")
    views = [_view(r) for r in rows[:limit]]
    more = str(views[-1].seq) if len(rows) > limit and views else None
    if wanted is not None:
        views = [v for v in views if v.redrive_state == wanted]
    return DeadLettersPage(views, more, await lag_of(deps, checkpoint))


@get("/", responses=errors(400, 503),
     summary="Messages the ledger could not decide, with their redrive state")
async def list_dead_letters(deps: ApiDeps, code: str | None = None,
                            wanted: str | None = Parameter(query="state", default=None,
                                                          description="pending, redriven or failed"),
                            limit: int = 100, cursor: str | None = None) -> Response[DeadLettersPage]:
    page = await read_dead_letters(deps, code, wanted, limit, cursor)
    return with_lag(page, page.projection_lag)


async def redrive_dead_letter(deps: ApiDeps, dead_letter_id: str) -> RedriveOutcome:
    """Hand the stored raw bytes to the decision path again and record the outcome (admins only)."""
    db = db_of(deps)
    raw = await db.fetchval("SELECT raw FROM dead_letter WHERE event_id = $1", dead_letter_id)
    if raw is None:
        raise not_found("this dead letter")
    if deps.submit is None:
        raise ApiError(503, "unavailable", "this process does not decide messages")
    results = await deps.submit(bytes(raw), f"redrive:{dead_letter_id}", "redrive")
    outcome = str(getattr(results[0], "result", "unknown")) if results else "none"
    ok = outcome != "rejected"
    payload = b"[" + b",".join(RESULT_ENCODER.encode(r) for r in results) + b"]"
    await db.execute("INSERT INTO dead_letter_redrive (dead_letter_id, outcome, ok, results) VALUES ($1, $2, $3, "
                     "$4::jsonb)", dead_letter_id, outcome, ok, payload.decode())
    return RedriveOutcome(dead_letter_id, outcome, ok, [msgspec.Raw(RESULT_ENCODER.encode(r)) for r in results])


@post("/{dead_letter_id:str}/redrive", responses=errors(400, 404, 503),
      status_code=200, opt={"roles": ("admin",)},
      summary="Submit a dead letter's raw bytes again through the decision path; the outcome is recorded")
async def redrive(dead_letter_id: str, deps: ApiDeps) -> RedriveOutcome:
    return await redrive_dead_letter(deps, dead_letter_id)


def dead_letters_router() -> Router:
    return Router(path="/v1/dead-letters", route_handlers=[list_dead_letters, redrive], tags=["dead letters"],
                  opt={"roles": ("supervisor", "admin")}, exception_handlers=EXCEPTION_HANDLERS)
