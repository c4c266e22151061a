"""The overview, a person's year and one settlement: the API's read functions, drawn for people."""
from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote

import msgspec
from litestar import Request, get, post
from litestar.response import Redirect, Template

from services.api.claims_reads import read_fund_flows, read_person_settlements, read_settlement, read_warnings
from services.api.deps import ApiDeps
from services.api.overview import read_overview
from services.api.persons import read_person_events, read_person_year, read_person_years
from services.api.read_common import ApiError
from services.api.supervision import run_verify
from services.console import charts
from services.console.i18n import translator
from services.console.state import ConsoleState
from services.console.views import lang_of, page, see_other

FLOW_FUNDS = ("critical_illness", "assistance", "hospital", "subsidy", "grant")
ZERO = Decimal(0)
SETTLEMENTS_SHOWN = 100       # a page stays small; a person with more has them in the API and the audit CSV


def fund_legend(t: Any, code: Any, funds: list[str]) -> list[tuple[str, str]]:
    known = [f for f in FLOW_FUNDS if f in funds] + sorted(set(funds) - set(FLOW_FUNDS))
    return [(f, code(f)) for f in known]


@get("/", name="console-overview")
async def overview(request: Request, deps: ApiDeps, console: ConsoleState) -> Template:
    from services.console.i18n import code_labeller
    lang = lang_of(request)
    t, code = translator(lang), code_labeller(lang)
    numbers = await read_overview(deps)
    flows = await read_fund_flows(deps)
    months = sorted({r.month for r in flows.months})[-12:]
    rows = [(r.month, r.fund, r.amount) for r in flows.months if r.month in months]
    chart = charts.month_bars(t("paid_by_month"), rows, fund_legend(t, code, [r[1] for r in rows]))
    return await page(request, deps, "overview.html", numbers=numbers, chart=chart, chain=console.chain)


@post("/verify")
async def start_verify(deps: ApiDeps, console: ConsoleState) -> Redirect:
    console.chain.start(deps)
    return see_other("/console/")


@get("/persons")
async def find_person(request: Request, deps: ApiDeps, psn_no: str | None = None, year: int | None = None
                      ) -> Template | Redirect:
    """The search box: a psn_no (and a year) lead to the person-year page, whose URL is the bookmark."""
    if psn_no and psn_no.strip():
        if year is None:
            years = await read_person_years(deps, deps.person_key(psn_no.strip()))
            year = years[-1] if years else None
        if year is not None:
            return see_other(f"/console/persons/{quote(psn_no.strip(), safe='')}/{year}")
        return await page(request, deps, "person_search.html", status=404, not_found=True)
    return await page(request, deps, "person_search.html", not_found=False)


@get("/persons/{psn_no:str}/{year:int}")
async def person_year(request: Request, deps: ApiDeps, psn_no: str, year: int, cursor: str | None = None) -> Template:
    t = translator(lang_of(request))
    view = await read_person_year(deps, psn_no, year)
    key = view.person_key
    settlements = await read_person_settlements(deps, key, year, limit=SETTLEMENTS_SHOWN)
    warnings = await read_warnings(deps, year=year, standing="all", person_key=key, limit=200)
    statuses = []
    for kind in ("status_granted", "status_revoked"):
        statuses += (await read_person_events(deps, psn_no, type=kind, limit=200)).events
    statuses.sort(key=lambda e: (e.seq, e.idx))
    trail = await read_person_events(deps, psn_no, limit=50, cursor=cursor)
    try:
        chain = await run_verify(deps, psn_no)
    except ApiError:
        chain = None
    cap = view.cap
    split = [(t("inpatient"), view.inpatient.maf_pay, "inpatient"), (t("outpatient"), view.outpatient.maf_pay,
             "outpatient"), (t("grants"), view.grants_granted, "grant")]
    cap_svg = charts.stacked_bar(t("cap"), split, cap.limit if cap else None, t("limit") if cap else None)
    ci = view.critical_illness
    ci_svg = charts.progress_bar(t("deductible"), ci.base, ci.deductible) if ci.deductible else None
    years = [y for y in await read_person_years(deps, key) if y != year]
    return await page(request, deps, "person_year.html", v=view, cap_svg=cap_svg, ci_svg=ci_svg,
                      settlements=settlements, warnings=warnings.warnings, statuses=[_status(e) for e in statuses],
                      trail=trail, chain=chain, years=years, psn_path=quote(psn_no, safe=""))


def _status(event: Any) -> dict[str, Any]:
    payload = msgspec.json.decode(event.payload)
    return {"kind": event.type, "status": payload.get("status"), "begndate": payload.get("begndate"),
            "enddate": payload.get("enddate"), "source_dept": payload.get("source_dept"),
            "doc_no": payload.get("doc_no"), "seq": event.seq}


@get("/settlements/{setl_id:str}")
async def settlement(request: Request, deps: ApiDeps, setl_id: str) -> Template:
    t = translator(lang_of(request))
    view = await read_settlement(deps, setl_id)
    f = view.facts
    steps = [(t("basic"), f["hifp_pay"] or ZERO, "basic")]
    if f.get("oth_pay"):
        steps.append((t("oth"), f["oth_pay"], "oth"))
    steps += [(t("ci"), f["hifmi_pay"] or ZERO, "critical_illness"), (t("assistance"), f["maf_pay"] or ZERO,
              "assistance"), (t("hospital"), f["hosp_part_amt"] or ZERO, "hospital")]
    svg = charts.waterfall(t("waterfall"), (t("total"), f["medfee_sumamt"] or ZERO), steps,
                           (t("person_pays"), f["psn_part_amt"] or ZERO))
    lines = [x for x in view.lines if x.kind == "payment"]
    later = [x for x in view.lines if x.kind != "payment"]
    return await page(request, deps, "settlement.html", s=view, f=f, svg=svg, lines=lines, later=later)


READ_ROUTES = [overview, start_verify, find_person, person_year, settlement]
