"""An audit as a job: choose the persons in scope, replay each from the stream, keep the findings.

Persons are found through the `settlement` and `person_year` read models (the
stream has no index by area or date); their events are then read from their
own subjects, so the replay sees the ledger itself, not the projection. The
job row (`audit_job`) carries status, progress and the differences; the CLI
runs the same `run_audit` without a job row.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from events.upcast import decode_commit
from events.money import ZERO
from services.audit.compare import Difference, Scope
from services.audit.packs import PackLibrary
from services.audit.replay import audit_person
from events.subjects import PERSON_SUBJECT, STREAM
from services.nats.reads import read_subject

log = logging.getLogger("ledger.audit")
MAX_STORED_DIFFERENCES = 10_000
HEARTBEAT_EVERY = 5.0           # seconds between a running job's beats
ABANDONED_AFTER = 60.0          # seconds of silence after which a queued/running job is marked failed
_ARCHIVE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class AuditRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Scope (a person, an area, a period — any combination), a point in time, and an optional what-if."""
    psn_no: str | None = None
    area: str | None = None
    date_from: dt.date | None = msgspec.field(default=None, name="from")
    date_to: dt.date | None = msgspec.field(default=None, name="to")
    as_of: dt.datetime | None = None
    # CLI: directories; HTTP: names of pack sets in the server's pack archive (see `within`)
    pack_dir: str | None = None          # archived pack versions, beside the shipped ones
    what_if_dir: str | None = None       # recompute with these packs instead (matched by pack id)
    overrides: dict[str, dict[str, str]] = {}

    def problems(self) -> list[str]:
        found = []
        if not (self.psn_no or self.area or self.date_from or self.date_to):
            found.append("give at least one of psn_no, area, from, to")
        if self.area is not None and not (self.area.isdigit() and 2 <= len(self.area) <= 6):
            found.append("area must be 2 to 6 digits of an admdvs code")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            found.append("from must not be after to")
        for name in ("pack_dir", "what_if_dir"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_dir():
                found.append(f"{name} {value!r} is not a directory")
        return found

    def within(self, archive: Path) -> AuditRequest:
        """The request with `pack_dir`/`what_if_dir` read as names of pack sets under `archive`.

        Over HTTP a supervisor names a pack set the operators archived; a server path would let
        any caller probe and parse the server's files. Raises ValueError for a name that is not
        a plain directory name or not in the archive.
        """
        paths = {}
        for name in ("pack_dir", "what_if_dir"):
            value = getattr(self, name)
            if value is None:
                continue
            if not _ARCHIVE_NAME.match(value):
                raise ValueError(f"{name} must name a pack set of the server's pack archive "
                                 f"(letters, digits, '.', '_', '-'), got {value!r}")
            path = archive / value
            if not path.is_dir():
                raise ValueError(f"{name}: no pack set {value!r} in the server's pack archive")
            paths[name] = str(path)
        return msgspec.structs.replace(self, **paths) if paths else self

    def scope(self) -> Scope:
        return Scope(self.psn_no, self.area, self.date_from, self.date_to)

    def library(self) -> PackLibrary:
        return PackLibrary.load([Path(self.pack_dir)] if self.pack_dir else None,
                                Path(self.what_if_dir) if self.what_if_dir else None, self.overrides or None)


class AuditOutcome(msgspec.Struct):
    totals: dict[str, Any]
    differences: list[Difference]


async def persons_in_scope(pool: Any, key_of: Callable[[str], str], req: AuditRequest) -> list[str]:
    if req.psn_no:
        return [key_of(req.psn_no)]
    rows = await pool.fetch(
        "SELECT person_key FROM settlement WHERE ($1::text IS NULL OR admdvs LIKE $1 || '%') "
        "AND ($2::date IS NULL OR enddate >= $2) AND ($3::date IS NULL OR enddate <= $3) "
        "UNION SELECT person_key FROM person_year WHERE $2::date IS NULL AND $3::date IS NULL "
        "AND admdvs LIKE $1 || '%' ORDER BY 1", req.area, req.date_from, req.date_to)
    return [r["person_key"] for r in rows]


async def commits_of(js: Any, key: str, stream: str = STREAM) -> list[tuple[int, Any]]:
    msgs = await read_subject(js, PERSON_SUBJECT.format(key), stream=stream)
    return [(m.seq, decode_commit(m.data)) for m in msgs]


async def run_audit(js: Any, keys: list[str], req: AuditRequest, *, stream: str = STREAM,
                    progress: Callable[[int, int], Any] | None = None) -> AuditOutcome:
    library = req.library()
    scope = req.scope()
    totals: dict[str, Any] = {"persons": len(keys), "commits": 0, "compared": 0, "skipped_after_as_of": 0,
                              "differences": 0, "what_if": library.is_what_if, "paid": {}, "recomputed": {}}
    differences: list[Difference] = []
    for done, key in enumerate(keys, 1):
        person = await audit_person(key, await commits_of(js, key, stream), library, scope, req.as_of)
        totals["commits"] += person.commits
        totals["compared"] += person.compared
        totals["skipped_after_as_of"] += person.skipped_after_as_of
        totals["differences"] += len(person.differences)
        for side in ("paid", "recomputed"):
            for fund, amount in getattr(person, side).items():
                totals[side][fund] = totals[side].get(fund, ZERO) + amount
        differences.extend(person.differences[:MAX_STORED_DIFFERENCES - len(differences)])
        if progress is not None:
            result = progress(done, len(keys))
            if asyncio.iscoroutine(result):
                await result
    totals["delta"] = {f: totals["recomputed"].get(f, ZERO) - totals["paid"].get(f, ZERO) for f in totals["paid"]}
    return AuditOutcome(totals, differences)


_JSON = msgspec.json.Encoder(decimal_format="string")


async def start_audit(pool: Any, js: Any, key_of: Callable[[str], str], req: AuditRequest, *,
                      stream: str = STREAM) -> str:
    """Record the job and run it in the background; returns its id."""
    job_id = uuid.uuid4().hex
    scope = {k: v for k, v in msgspec.to_builtins(req).items() if k != "psn_no"}
    if req.psn_no:
        scope["person_key"] = key_of(req.psn_no)     # the job row never holds a psn_no
    await pool.execute("INSERT INTO audit_job (id, scope, status, heartbeat_at) VALUES ($1, $2::jsonb, 'queued', "
                       "now())", job_id, _JSON.encode(scope).decode())
    task = asyncio.create_task(_run_job(pool, js, key_of, job_id, req, stream))
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return job_id


_RUNNING: set[asyncio.Task] = set()


async def expire_abandoned(pool: Any, job_id: str, after: float = ABANDONED_AFTER) -> None:
    """Fail a queued/running job whose runner has been silent for `after` seconds: its process stopped."""
    await pool.execute(
        "UPDATE audit_job SET status = 'failed', finished_at = now(), error = 'abandoned: the process running it "
        "stopped (no heartbeat since ' || heartbeat_at || '); start the audit again' WHERE id = $1 "
        "AND status IN ('queued', 'running') AND heartbeat_at < now() - make_interval(secs => $2)", job_id, after)


async def _beat(pool: Any, job_id: str) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_EVERY)
        try:
            await pool.execute("UPDATE audit_job SET heartbeat_at = now() WHERE id = $1", job_id)
        except Exception as exc:        # a missed beat is retried; only a minute of them fails the job
            log.warning("audit %s: heartbeat failed: %s", job_id, exc)


async def _run_job(pool: Any, js: Any, key_of: Callable[[str], str], job_id: str, req: AuditRequest,
                   stream: str) -> None:
    beat = asyncio.create_task(_beat(pool, job_id))
    try:
        await _run_job_beating(pool, js, key_of, job_id, req, stream)
    except asyncio.CancelledError:       # the process is stopping: say so rather than stay "running"
        with contextlib.suppress(Exception):     # the pool may be closing too: then the silence tells readers
            await pool.execute("UPDATE audit_job SET status = 'failed', error = $2, finished_at = now() "
                               "WHERE id = $1 AND status IN ('queued', 'running')", job_id,
                               "interrupted: the process running it stopped; start the audit again")
        raise
    finally:
        beat.cancel()


async def _run_job_beating(pool: Any, js: Any, key_of: Callable[[str], str], job_id: str, req: AuditRequest,
                           stream: str) -> None:
    try:
        keys = await persons_in_scope(pool, key_of, req)
        await pool.execute("UPDATE audit_job SET status = 'running', total = $2, started_at = now() WHERE id = $1",
                           job_id, len(keys))

        async def progress(done: int, total: int) -> None:
            if done == total or done % 50 == 0:
                await pool.execute("UPDATE audit_job SET done = $2 WHERE id = $1", job_id, done)

        outcome = await run_audit(js, keys, req, stream=stream, progress=progress)
        await pool.execute(
            "UPDATE audit_job SET status = 'done', done = total, totals = $2::jsonb, differences = $3::jsonb, "
            "finished_at = now() WHERE id = $1", job_id, _JSON.encode(outcome.totals).decode(),
            _JSON.encode(outcome.differences).decode())
    except Exception as exc:       # the job row is how the caller learns of it
        log.exception("audit %s failed", job_id)
        await pool.execute("UPDATE audit_job SET status = 'failed', error = $2, finished_at = now() WHERE id = $1",
                           job_id, f"{type(exc).__name__}: {exc}")
