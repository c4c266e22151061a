"""Supervisor jobs: audit replays, chain verification, projection status and rebuild progress."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import msgspec
from litestar import Response, Router, get, post

from services.api.deps import ApiDeps
from services.api.read_common import EXCEPTION_HANDLERS, ApiError, bad, db_of, not_found, stream_head
from services.api.responses import errors
from services.audit.job import AuditRequest, expire_abandoned, start_audit
from services.policy.pack import PackError


class AuditView(msgspec.Struct):
    id: str
    status: str
    scope: Any
    done: int
    total: int
    totals: Any
    differences: Any
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class RebuildView(msgspec.Struct):
    status: str
    seq: int
    target_seq: int
    rate: float | None            # messages per second over the elapsed seconds
    eta_seconds: float | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    error: str | None


class ProjectionView(msgspec.Struct):
    name: str
    checkpoint: int
    stream_last_seq: int | None
    lag: int | None
    generation: int
    owner: str | None
    updated_at: dt.datetime
    rebuild: RebuildView | None


def pack_archive(deps: ApiDeps) -> Path:
    found = deps.pack_archive or (deps.settings.pack_archive_dir if deps.settings else None)
    if found is None:
        raise ValueError("this server has no pack archive; audit under the shipped packs or with overrides")
    return Path(found)


def _stream(deps: ApiDeps) -> str:
    return deps.stream


@post("/audits", responses=errors(400, 503), status_code=202, summary="Start an audit replay (person, area and/or period; as of; what if)",
      description="`pack_dir` and `what_if_dir` name pack sets in the server's pack archive (LEDGER_PACK_ARCHIVE), "
                  "not paths.")
async def create_audit(data: AuditRequest, deps: ApiDeps) -> AuditView:
    return await begin_audit(deps, data)


async def begin_audit(deps: ApiDeps, data: AuditRequest) -> AuditView:
    """Check the request, start its job in this process, and return the job as it stands."""
    if data.pack_dir is not None or data.what_if_dir is not None:
        try:
            data = data.within(pack_archive(deps))
        except ValueError as exc:
            raise bad(str(exc)) from None
    problems = data.problems()
    if problems:
        raise bad("; ".join(problems))
    if deps.js is None:
        raise ApiError(503, "unavailable", "no NATS connection to read the ledger from")
    try:
        data.library()
    except (PackError, OSError, ValueError) as exc:
        raise bad(str(exc)) from None
    job_id = await start_audit(db_of(deps), deps.js, deps.person_key, data, stream=_stream(deps))
    return await read_audit(deps, job_id)


async def read_audit(deps: ApiDeps, job_id: str) -> AuditView:
    """The job row with its progress, totals and differences (a silent job is failed first)."""
    await expire_abandoned(db_of(deps), job_id)
    row = await db_of(deps).fetchrow("SELECT * FROM audit_job WHERE id = $1", job_id)
    if row is None:
        raise not_found("this audit")
    return AuditView(row["id"], row["status"], msgspec.Raw(row["scope"]), row["done"], row["total"],
                     msgspec.Raw(row["totals"]), msgspec.Raw(row["differences"]), row["error"], row["created_at"],
                     row["started_at"], row["finished_at"])


@get("/audits/{audit_id:str}", responses=errors(400, 404, 503), summary="An audit's status, progress, totals and differences")
async def get_audit(audit_id: str, deps: ApiDeps) -> AuditView:
    return await read_audit(deps, audit_id)


@get("/verify", responses=errors(400, 404, 503), summary="Recompute every person's hash chain and check every seal from the stream (or one "
                         "person's); the first break, and what the stream lost against the read models",
     description="With `psn_no`, only that person's subject is read: seconds, where the whole ledger may take "
                 "minutes (then prefer `ledger verify`). `findings` are what the read side finds the stream lost "
                 "or holds unsealed (ADR 0010); `acceptances` and `restores` what operators did about it. `ok` "
                 "only when there is no break, no missing sequence and no finding.")
async def verify(deps: ApiDeps, psn_no: str | None = None) -> Any:
    return await run_verify(deps, psn_no)


async def run_verify(deps: ApiDeps, psn_no: str | None = None) -> Any:
    """A VerifyReport of the whole stream, or of one person's subject, with what loss detection found."""
    from projections.verify import verify_person, verify_stream, with_integrity
    from services.integrity.records import integrity_of
    if deps.js is None:
        raise ApiError(503, "unavailable", "no NATS connection to read the ledger from")
    seal_key = deps.seal_key
    if seal_key is None:
        raise ApiError(503, "unavailable", "this server has no seal key to verify commits with")
    key = None
    if psn_no is not None:
        if not psn_no.strip():
            raise bad("psn_no must not be empty")
        key = deps.person_key(psn_no)
        report = await verify_person(deps.js, key, stream=_stream(deps), seal_key=seal_key)
        if report.messages == 0:
            raise not_found("no events for this person")
    else:
        report = await verify_stream(deps.js, stream=_stream(deps), seal_key=seal_key)
    found, accepted, restored = await integrity_of(db_of(deps), deps.js, seal_key, deps.integrity)
    if key is not None:
        found = [f for f in found if f.whole_stream or f.person_key == key]
    return with_integrity(report, found, accepted, restored)


class AuditSummary(msgspec.Struct):
    id: str
    status: str
    scope: dict[str, Any]
    done: int
    total: int
    created_at: dt.datetime


async def read_recent_audits(deps: ApiDeps, limit: int = 20) -> list[AuditSummary]:
    """The latest audit jobs, newest first (the console lists them beside its form)."""
    rows = await db_of(deps).fetch("SELECT id, status, scope, done, total, created_at FROM audit_job "
                                   "ORDER BY created_at DESC LIMIT $1", limit)
    return [AuditSummary(r["id"], r["status"], msgspec.json.decode(r["scope"]), r["done"], r["total"],
                         r["created_at"]) for r in rows]


def _rebuild(r: Any) -> RebuildView | None:
    if r["status"] is None:
        return None
    elapsed = ((r["finished_at"] or r["r_updated_at"]) - r["started_at"]).total_seconds()
    rate = r["r_seq"] / elapsed if elapsed > 0 else None
    eta = (r["target_seq"] - r["r_seq"]) / rate if rate and r["status"] == "running" else None
    return RebuildView(r["status"], r["r_seq"], r["target_seq"], rate, eta, r["started_at"], r["finished_at"],
                       r["error"])


@get("/projections", responses=errors(400, 503), summary="Each projection's checkpoint, lag, owner and rebuild progress",
     description="`lag` is the stream's last sequence minus the checkpoint: negative when the stream ends before "
                 "what was projected (it lost messages: see `GET /v1/verify`).")
async def projections(deps: ApiDeps) -> Response[list[ProjectionView]]:
    return Response(await read_projections(deps))


async def read_projections(deps: ApiDeps) -> list[ProjectionView]:
    """Each projection's checkpoint and lag behind the stream head, with its rebuild if one ran."""
    rows = await db_of(deps).fetch(
        "SELECT c.*, r.status, r.seq AS r_seq, r.target_seq, r.started_at, r.updated_at AS r_updated_at, "
        "r.finished_at, r.error FROM projection_checkpoint c LEFT JOIN projection_rebuild r USING (projection) "
        "ORDER BY c.projection")
    head = await stream_head(deps)
    # A negative lag says the stream is behind its checkpoint: loss, shown, not hidden (ADR 0010).
    return [ProjectionView(r["projection"], r["seq"], head, None if head is None else head - r["seq"],
                           r["generation"], r["owner"], r["updated_at"], _rebuild(r)) for r in rows]


def supervision_router() -> Router:
    return Router(path="/v1", route_handlers=[create_audit, get_audit, verify, projections], tags=["supervision"],
                  opt={"roles": ("supervisor", "admin")}, exception_handlers=EXCEPTION_HANDLERS)


def read_routers() -> list[Router]:
    """Every router of the read side, for `create_app(deps, routers=read_routers())`."""
    from services.api.claims_reads import claims_router
    from services.api.dead_letters import dead_letters_router
    from services.api.digest import digest_router
    from services.api.overview import overview_router
    from services.api.persons import persons_router
    return [persons_router(), claims_router(), dead_letters_router(), supervision_router(), overview_router(),
            digest_router()]
