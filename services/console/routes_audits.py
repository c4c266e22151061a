"""Audit replays from a form: start one, watch its progress, read its differences, take them as CSV or print."""
from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.response import Redirect, Template

from services.api.deps import ApiDeps
from services.api.read_common import ApiError, bad
from services.api.supervision import pack_archive, begin_audit, read_audit, read_recent_audits
from services.audit.job import AuditRequest
from services.policy.pack import PackSet
from services.console.views import csv_response, page, see_other

SHOWN = 100                       # differences on a page (~40 kB of HTML); the CSV has them all
DIFF_COLUMNS = ("person_key", "seq", "kind", "key", "field", "fund", "rule_id", "clause", "paid", "recomputed",
                "delta", "pack", "pack_version", "note")
FORM_FIELDS = ("psn_no", "area", "from", "to", "as_of", "pack_dir", "what_if_dir", "override_pack",
               "override_path", "override_value")


@cache
def _shipped_pack_ids() -> tuple[str, ...]:
    return tuple(sorted(PackSet.from_dir().by_id))


def _pack_ids(deps: ApiDeps) -> list[str]:
    packs = deps.packs
    return sorted(packs.by_id) if packs is not None else list(_shipped_pack_ids())


def _archived_sets(deps: ApiDeps) -> list[str]:
    try:
        archive = pack_archive(deps)
    except ValueError:
        return []
    return sorted(p.name for p in archive.iterdir() if p.is_dir()) if archive.is_dir() else []


def request_of(form: dict[str, str]) -> AuditRequest:
    """The form's fields as the API's AuditRequest; `as_of` from a datetime-local field is UTC+8."""
    body: dict[str, Any] = {k: form[k] for k in ("psn_no", "area", "from", "to", "pack_dir", "what_if_dir")
                            if form.get(k)}
    if form.get("as_of"):
        as_of = form["as_of"]
        body["as_of"] = as_of + (":00" if len(as_of) == 16 else "") + "+08:00"
    if form.get("override_path") or form.get("override_value"):
        if not (form.get("override_pack") and form.get("override_path") and form.get("override_value")):
            raise bad("a what-if parameter needs its pack, its path and its value")
        body["overrides"] = {form["override_pack"]: {form["override_path"]: form["override_value"]}}
    try:
        return msgspec.json.decode(msgspec.json.encode(body), type=AuditRequest)
    except msgspec.ValidationError as exc:
        raise bad(str(exc)) from None


async def _form_page(request: Request, deps: ApiDeps, form: dict[str, str], error: str | None = None,
                     status: int = 200) -> Template:
    return await page(request, deps, "audits.html", status=status, form=form, error=error,
                      archived=_archived_sets(deps), pack_ids=_pack_ids(deps),
                      recent=await read_recent_audits(deps), scope_text=scope_text)


@get("/audits")
async def audits(request: Request, deps: ApiDeps) -> Template:
    return await _form_page(request, deps, {})


@post("/audits")
async def start(request: Request, deps: ApiDeps) -> Template | Redirect:
    raw = await request.form()
    form = {k: str(raw.get(k) or "").strip() for k in FORM_FIELDS}
    try:
        job = await begin_audit(deps, request_of(form))
    except ApiError as exc:
        form["psn_no"] = ""                  # a page with an error never carries the person number back
        return await _form_page(request, deps, form, exc.message, exc.status)
    return see_other(f"/console/audits/{job.id}")


def scope_text(scope: dict[str, Any]) -> str:
    """An audit's scope in one line: `area=1410 from=2022-01-01 linfen-2022: path = 0.9`."""
    parts = [f"{k}={v}" for k, v in sorted(scope.items()) if k != "overrides" and v not in (None, "")]
    for pack, values in (scope.get("overrides") or {}).items():
        parts += [f"{pack}: {path} = {value}" for path, value in values.items()]
    return " ".join(parts)


def _job(view: Any) -> dict[str, Any]:
    return {"view": view, "scope": scope_text(msgspec.json.decode(view.scope)),
            "totals": msgspec.json.decode(view.totals),
            "differences": msgspec.json.decode(view.differences)}


def by_rule(differences: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Line differences summed per fund, rule and clause: what a printed report leads with."""
    rows: dict[tuple, dict[str, Any]] = {}
    for d in differences:
        if d.get("kind") not in ("line", "adjustment"):
            continue
        row = rows.setdefault((d.get("fund"), d.get("rule_id"), d.get("clause")), {
            "fund": d.get("fund"), "rule_id": d.get("rule_id"), "clause": d.get("clause"), "count": 0,
            "delta": Decimal(0)})
        row["count"] += 1
        row["delta"] += Decimal(d.get("delta") or 0)
    return sorted(rows.values(), key=lambda r: (str(r["fund"]), str(r["rule_id"])))


@get("/audits/{audit_id:str}")
async def job(request: Request, deps: ApiDeps, audit_id: str, start: int = 0) -> Template:
    found = _job(await read_audit(deps, audit_id))
    start = max(0, min(start, len(found["differences"])))
    return await page(request, deps, "audit_job.html", shown=SHOWN, start=start, **found)


@get("/audits/{audit_id:str}/report")
async def report(request: Request, deps: ApiDeps, audit_id: str) -> Template:
    found = _job(await read_audit(deps, audit_id))
    return await page(request, deps, "audit_report.html", shown=SHOWN, start=0, rules=by_rule(found["differences"]),
                      **found)


@get("/audits/{audit_id:str}/differences.csv")
async def differences_csv(deps: ApiDeps, audit_id: str) -> Any:
    found = _job(await read_audit(deps, audit_id))
    rows = ([d.get(c) for c in DIFF_COLUMNS] for d in found["differences"])
    return csv_response(f"audit-{audit_id}-differences.csv", DIFF_COLUMNS, rows)


AUDIT_ROUTES = [audits, start, job, report, differences_csv]
