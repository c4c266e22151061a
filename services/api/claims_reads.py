"""Reads across persons: one settlement with every line, fund flows by area/fund/month, warnings."""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import msgspec
from litestar import Response, Router, get
from litestar.params import Parameter

from services.api.deps import ApiDeps
from services.api.read_common import (EXCEPTION_HANDLERS, MAX_LIMIT, YEAR, bad, check_limit, db_of, lag_of,
                                      not_found, parse_cursor, with_lag)
from services.api.responses import errors

_CHECKPOINT = "SELECT seq FROM projection_checkpoint WHERE projection = 'claims'"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class LineView(msgspec.Struct):
    seq: int
    idx: int
    kind: str
    fund: str
    rule_id: str
    clause: str
    base: Decimal | None
    ratio: Decimal | None
    threshold: Decimal | None
    cumulative_before: Decimal | None
    formula_amount: Decimal | None
    counter: str | None
    cap_limit: Decimal | None
    cap_used_before: Decimal | None
    amount: Decimal
    adjustment: str | None
    pack: str | None
    pack_version: str | None
    event_id: str | None
    recorded_at: dt.datetime | None


class SettlementView(msgspec.Struct):
    setl_id: str
    person_key: str
    facts: dict[str, Any]
    lines: list[LineView]
    projection_lag: int | None


class FlowRow(msgspec.Struct):
    month: str
    fund: str
    amount: Decimal
    lines: int


class FlowsView(msgspec.Struct):
    area: str | None
    period_from: str | None
    period_to: str | None
    months: list[FlowRow]
    totals: dict[str, Decimal]
    projection_lag: int | None


class WarningView(msgspec.Struct):
    seq: int
    idx: int
    person_key: str
    admdvs: str | None
    year: int | None
    code: str
    clause: str | None
    figure: Decimal | None
    threshold: Decimal | None
    setl_id: str | None
    recorded_at: dt.datetime | None
    withdrawn: bool = False                  # its settlement was cancelled: the figure no longer stands
    withdrawn_at: dt.datetime | None = None


class WarningsPage(msgspec.Struct):
    warnings: list[WarningView]
    next_cursor: str | None
    projection_lag: int | None


def _area(area: str | None) -> str | None:
    if area is not None and not (area.isdigit() and 2 <= len(area) <= 6):
        raise bad("area must be 2 to 6 digits of an admdvs code (a prefix covers its sub-areas)")
    return area


def _month(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    m = _MONTH.match(value)
    if m is None or not 1 <= int(m.group(2)) <= 12:
        raise bad(f"{name} must be a month YYYY-MM")
    return dt.date(int(m.group(1)), int(m.group(2)), 1)


async def read_settlement(deps: ApiDeps, setl_id: str) -> SettlementView:
    """One settlement's facts and every line (payments, adjustments, reversals), in stream order."""
    async with db_of(deps).acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM settlement WHERE setl_id = $1 ORDER BY seq DESC LIMIT 1", setl_id)
        if row is None:
            raise not_found("this settlement")
        lines = await conn.fetch("SELECT * FROM settlement_line WHERE setl_id = $1 AND person_key = $2 "
                                 "ORDER BY seq, idx", setl_id, row["person_key"])
        checkpoint = await conn.fetchval(_CHECKPOINT)
    facts = {k: v for k, v in row.items() if k not in ("setl_id", "person_key")}
    view_lines = [LineView(**{f: line[f] for f in LineView.__struct_fields__}) for line in lines]
    return SettlementView(setl_id, row["person_key"], facts, view_lines, await lag_of(deps, checkpoint))


@get("/settlements/{setl_id:str}", responses=errors(400, 404, 503),
     summary="One settlement as decided, with every line, rule and clause")
async def settlement(setl_id: str, deps: ApiDeps) -> Response[SettlementView]:
    view = await read_settlement(deps, setl_id)
    return with_lag(view, view.projection_lag)


class SettlementRow(msgspec.Struct):
    setl_id: str
    med_type: str | None
    inpatient: bool | None
    enddate: dt.date | None
    status: str | None
    medfee_sumamt: Decimal | None
    hifmi_pay: Decimal | None
    maf_pay: Decimal | None
    maf_adjusted: Decimal
    psn_part_amt: Decimal | None
    cancelled: bool | None


async def read_person_settlements(deps: ApiDeps, person_key: str, year: int, limit: int = MAX_LIMIT
                                  ) -> list[SettlementRow]:
    """A person-year's settlements in decision order, each with the status applied to it."""
    rows = await db_of(deps).fetch(
        "SELECT * FROM settlement WHERE person_key = $1 AND year = $2 ORDER BY seq LIMIT $3", person_key, year, limit)
    return [SettlementRow(**{f: r[f] for f in SettlementRow.__struct_fields__}) for r in rows]


async def read_fund_flows(deps: ApiDeps, area: str | None = None, from_: str | None = None, to: str | None = None,
                          fund: str | None = None) -> FlowsView:
    """Money paid by month and fund within an area prefix and a span of months."""
    start, end = _month(from_, "from"), _month(to, "to")
    if start and end and start > end:
        raise bad("from must not be after to")
    _area(area)
    async with db_of(deps).acquire() as conn:
        rows = await conn.fetch(
            "SELECT month, fund, sum(amount) AS amount, sum(lines)::int AS lines FROM fund_flow "
            "WHERE ($1::text IS NULL OR admdvs LIKE $1 || '%') AND ($2::date IS NULL OR month >= $2) "
            "AND ($3::date IS NULL OR month <= $3) AND ($4::text IS NULL OR fund = $4) "
            "GROUP BY month, fund ORDER BY month, fund", area, start, end, fund)
        checkpoint = await conn.fetchval(_CHECKPOINT)
    months = [FlowRow(r["month"].strftime("%Y-%m"), r["fund"], r["amount"], r["lines"]) for r in rows]
    totals: dict[str, Decimal] = {}
    for r in months:
        totals[r.fund] = totals.get(r.fund, Decimal(0)) + r.amount
    return FlowsView(area, from_, to, months, totals, await lag_of(deps, checkpoint))


@get("/funds/flows", responses=errors(400, 503),
     summary="Money paid by area, fund and month (reversals negative)")
async def fund_flows(deps: ApiDeps, area: str | None = None,
                     from_: str | None = Parameter(query="from", default=None, description="first month, YYYY-MM"),
                     to: str | None = Parameter(default=None, description="last month, YYYY-MM"),
                     fund: str | None = None) -> Response[FlowsView]:
    view = await read_fund_flows(deps, area, from_, to, fund)
    return with_lag(view, view.projection_lag)


WARNING_STATES = ("active", "withdrawn", "all")


async def read_warnings(deps: ApiDeps, area: str | None = None, year: int | None = None, code: str | None = None,
                        standing: str = "active", limit: int = 100, cursor: str | None = None,
                        person_key: str | None = None) -> WarningsPage:
    """One page of warnings, oldest first; `person_key` narrows to one person (the console's person page)."""
    check_limit(limit)
    _area(area)
    if standing not in WARNING_STATES:
        raise bad(f"state must be one of {', '.join(WARNING_STATES)}")
    after = parse_cursor(cursor)
    async with db_of(deps).acquire() as conn:
        rows = await conn.fetch(
            "SELECT w.*, coalesce(s.cancelled, false) AS withdrawn, s.cancel_time AS withdrawn_at FROM warning w "
            "LEFT JOIN settlement s ON s.setl_id = w.setl_id AND s.person_key = w.person_key "
            "WHERE ($1::text IS NULL OR w.admdvs LIKE $1 || '%') AND ($2::int IS NULL OR w.year = $2) "
            "AND ($3::text IS NULL OR w.code = $3) AND (w.seq, w.idx) > ($4, $5) "
            "AND ($7 = 'all' OR ($7 = 'withdrawn') = coalesce(s.cancelled, false)) "
            "AND ($8::text IS NULL OR w.person_key = $8) "
            "ORDER BY w.seq, w.idx LIMIT $6",
            area, year, code, after[0], after[1], limit + 1, standing, person_key)
        checkpoint = await conn.fetchval(_CHECKPOINT)
    page = [WarningView(**{f: r[f] for f in WarningView.__struct_fields__}) for r in rows[:limit]]
    more = f"{page[-1].seq}.{page[-1].idx}" if len(rows) > limit else None
    return WarningsPage(page, more, await lag_of(deps, checkpoint))


@get("/warnings", responses=errors(400, 503),
     summary="因病返贫致贫 warnings, newest last; filter by area, year, code and state",
     description="`state=active` (the default) leaves out warnings whose settlement was cancelled since; "
                 "`withdrawn` lists only those, `all` both.")
async def warnings(deps: ApiDeps, area: str | None = None, year: int | None = Parameter(default=None, **YEAR),
                   code: str | None = None, standing: str = Parameter(query="state", default="active"),
                   limit: int = 100, cursor: str | None = None) -> Response[WarningsPage]:
    page = await read_warnings(deps, area, year, code, standing, limit, cursor)
    return with_lag(page, page.projection_lag)


def claims_router() -> Router:
    return Router(path="/v1", route_handlers=[settlement, fund_flows, warnings], tags=["reads"],
                  opt={"roles": ("supervisor", "admin")}, exception_handlers=EXCEPTION_HANDLERS)
