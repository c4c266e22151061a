"""What every read route shares: JSON errors, the projection lag, cursors, the database handle.

Errors are `{"code": ..., "message": ...}` with 400 (bad parameter), 404
(unknown id) or 503 (no database / stream configured). Every read says how far
behind the stream its projection is: header `X-Projection-Lag` = stream last
sequence − the projection's checkpoint (the stream head is cached for
`ApiDeps.projection_lag_ttl` seconds so a busy endpoint does not ask NATS on every request).
"""
from __future__ import annotations

import time
from typing import Any

import asyncpg
import msgspec
import nats.errors
import nats.js.errors
import structlog
from litestar import Request, Response
from litestar.exceptions import ValidationException

from services.api.deps import ApiDeps

log = structlog.get_logger(component="ledger.reads")

LAG_HEADER = "X-Projection-Lag"
YEAR = {"ge": 1900, "le": 2200}          # Parameter bounds of a policy year (and of PostgreSQL's int4)
_SEQ_MAX = 2**63 - 1
MAX_LIMIT = 1000


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ErrorBody(msgspec.Struct):
    code: str
    message: str


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} is not in the read models")


def bad(message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message)


def _api_error(_: Request, exc: ApiError) -> Response[ErrorBody]:
    return Response(ErrorBody(exc.code, exc.message), status_code=exc.status)


def _validation_error(_: Request, exc: ValidationException) -> Response[ErrorBody]:
    # Not `exc.detail`: Litestar puts the request's path and query in it, which may carry a psn_no.
    extra = "; ".join(f"{e.get('key', '')}: {e.get('message', '')}" for e in (exc.extra or []) if isinstance(e, dict))
    return Response(ErrorBody("invalid_parameter", f"invalid parameters{': ' + extra if extra else ''}"),
                    status_code=400)


def _unavailable(_: Request, exc: Exception) -> Response[ErrorBody]:
    """PostgreSQL or NATS is down (or restarting): a 503 the caller can retry, not a 500 with a stack."""
    log.warning("read_unavailable", error=repr(exc)[:500])
    return Response(ErrorBody("unavailable", f"the read models cannot be reached now, try again: "
                                             f"{type(exc).__name__}"), status_code=503)


# What a dead or restarting server raises on the read path (asyncpg pool, nats-py requests).
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError, nats.errors.TimeoutError, nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError, nats.errors.ConnectionClosedError,
    nats.js.errors.ServiceUnavailableError)

EXCEPTION_HANDLERS: dict[Any, Any] = {ApiError: _api_error, ValidationException: _validation_error,
                                      **{error: _unavailable for error in UNAVAILABLE_ERRORS}}


def db_of(deps: ApiDeps) -> asyncpg.Pool:
    if deps.db is None:
        raise ApiError(503, "unavailable", "no PostgreSQL configured for the read models (DATABASE_URL)")
    return deps.db


def key_of(deps: ApiDeps, psn_no: str) -> str:
    if not psn_no.strip():
        raise bad("psn_no must not be empty")
    return deps.person_key(psn_no)     # type: ignore[misc]  (every server that reads persons has one)


_heads: dict[int, tuple[float, int]] = {}


async def stream_head(deps: ApiDeps) -> int | None:
    """The stream's last sequence, at most `deps.projection_lag_ttl` seconds old; None without NATS or while it is down."""
    js = deps.js
    if js is None or not js._nc.is_connected:     # NATS down: the reads still answer, lag unknown
        return None
    now = time.monotonic()
    cached = _heads.get(id(js))
    ttl = deps.projection_lag_ttl
    if cached is None or now - cached[0] > ttl:
        info = await js.stream_info(deps.stream)
        cached = _heads[id(js)] = (now, int(info.state.last_seq or 0))
    return cached[1]


async def lag_of(deps: ApiDeps, checkpoint: int | None) -> int | None:
    head = await stream_head(deps)
    return None if head is None else max(0, head - (checkpoint or 0))


def with_lag(body: Any, lag: int | None, status: int = 200) -> Response[Any]:
    return Response(body, status_code=status, headers={LAG_HEADER: "" if lag is None else str(lag)})


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise bad(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def parse_cursor(cursor: str | None) -> tuple[int, int]:
    """Cursors are `<seq>.<idx>` of the last row of the previous page."""
    if not cursor:
        return (0, -1)
    seq, _, idx = cursor.partition(".")
    if not (seq.isdigit() and idx.isdigit() and int(seq) <= _SEQ_MAX and int(idx) < 2**31):
        raise bad("cursor is not one this API gave")
    return int(seq), int(idx)


def parse_seq_cursor(cursor: str | None) -> int:
    """Cursors that are one stream sequence."""
    if cursor is None:
        return 0
    if not (cursor.isdigit() and int(cursor) <= _SEQ_MAX):
        raise bad("cursor is not one this API gave")
    return int(cursor)
