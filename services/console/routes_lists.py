"""Fund flows (chart, table, CSV), warnings and dead letters, with the API's filters as form fields."""
from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template

from services.api.claims_reads import WARNING_STATES, read_fund_flows, read_warnings
from services.api.dead_letters import read_dead_letters, redrive_dead_letter
from services.api.deps import ApiDeps
from services.console import charts
from services.console.i18n import code_labeller, translator
from services.console.routes_reads import fund_legend
from services.console.views import csv_response, lang_of, page, see_other

PAGE = 100
DEAD_LETTERS_PAGE = 25
RAW_SHOWN = 2000             # characters of a raw message on the page (a dead letter may be any size)


def _blank(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


@get("/funds")
async def funds(request: Request, deps: ApiDeps, area: str | None = None,
                from_: str | None = Parameter(query="from", default=None), to: str | None = None,
                fund: str | None = None) -> Template:
    lang = lang_of(request)
    t, code = translator(lang), code_labeller(lang)
    area, from_, to, fund = _blank(area), _blank(from_), _blank(to), _blank(fund)
    view = await read_fund_flows(deps, area, from_, to, fund)
    legend = fund_legend(t, code, sorted({r.fund for r in view.months}))
    chart = charts.month_bars(t("funds.title"), [(r.month, r.fund, r.amount) for r in view.months], legend)
    table: dict[str, dict[str, Decimal]] = {}
    for r in view.months:
        table.setdefault(r.month, {})[r.fund] = r.amount
    query = urlencode({k: v for k, v in (("area", area), ("from", from_), ("to", to), ("fund", fund)) if v})
    return await page(request, deps, "funds.html", view=view, chart=chart, legend=legend, table=table,
                      csv_url=f"/console/funds.csv?{query}", filters={"area": area, "from": from_, "to": to,
                                                                       "fund": fund})


@get("/funds.csv")
async def funds_csv(deps: ApiDeps, area: str | None = None, from_: str | None = Parameter(query="from", default=None),
                    to: str | None = None, fund: str | None = None) -> Any:
    view = await read_fund_flows(deps, _blank(area), _blank(from_), _blank(to), _blank(fund))
    return csv_response("fund-flows.csv", ["month", "fund", "amount", "lines"],
                        ([r.month, r.fund, str(r.amount), r.lines] for r in view.months))


@get("/warnings")
async def warnings(request: Request, deps: ApiDeps, area: str | None = None, year: int | None = None,
                   code: str | None = None, standing: str = Parameter(query="state", default="active"),
                   cursor: str | None = None) -> Template:
    area, code = _blank(area), _blank(code)
    found = await read_warnings(deps, area, year, code, standing, PAGE, cursor)
    query = {k: v for k, v in (("area", area), ("year", year), ("code", code), ("state", standing)) if v}
    more = f"/console/warnings?{urlencode({**query, 'cursor': found.next_cursor})}" if found.next_cursor else None
    return await page(request, deps, "warnings.html", found=found, more=more, states=WARNING_STATES,
                      filters={"area": area, "year": year, "code": code, "state": standing})


@get("/dead-letters")
async def dead_letters(request: Request, deps: ApiDeps, code: str | None = None,
                       wanted: str | None = Parameter(query="state", default=None), cursor: str | None = None,
                       redriven: str | None = None) -> Template:
    code, wanted = _blank(code), _blank(wanted)
    found = await read_dead_letters(deps, code, wanted, DEAD_LETTERS_PAGE, cursor)
    query = {k: v for k, v in (("code", code), ("state", wanted)) if v}
    more = f"/console/dead-letters?{urlencode({**query, 'cursor': found.next_cursor})}" if found.next_cursor else None
    return await page(request, deps, "dead_letters.html", found=found, more=more, redriven=redriven, raw_shown=RAW_SHOWN,
                      filters={"code": code, "state": wanted})


@post("/dead-letters/{dead_letter_id:str}/redrive", opt={"roles": ("admin",)})
async def redrive(deps: ApiDeps, dead_letter_id: str) -> Redirect:
    await redrive_dead_letter(deps, dead_letter_id)
    return see_other(f"/console/dead-letters?{urlencode({'redriven': dead_letter_id})}#dl-{dead_letter_id}")


LIST_ROUTES = [funds, funds_csv, warnings, dead_letters, redrive]
