"""Reads of one person: the year's usage and the audit trail. The URL carries psn_no; the
database only knows its keyed hash (`person_key`), and neither is logged."""
from __future__ import annotations

import datetime as dt
import typing
from decimal import Decimal
from typing import Any

import msgspec
from litestar import Response, Router, get
from litestar.params import Parameter

from events.ledger import Event
from events.upcast import tags_of
from services.api.deps import ApiDeps
from services.api.read_common import (EXCEPTION_HANDLERS, YEAR, bad, check_limit, db_of, key_of, lag_of, not_found,
                                      parse_cursor, with_lag)
from services.api.responses import errors

EVENT_TYPES = frozenset(t.__struct_config__.tag for t in typing.get_args(Event))


class Split(msgspec.Struct):
    count: int
    medfee_sumamt: Decimal
    hifmi_pay: Decimal
    maf_pay: Decimal
    hosp_part_amt: Decimal
    psn_part_amt: Decimal


class CriticalIllness(msgspec.Struct):
    base: Decimal                     # cumulative oop counted for 大病 this year
    deductible: Decimal | None        # of the status applied, from the person's events (policy.md §4)
    progress: Decimal | None          # base / deductible, capped at 1
    paid: Decimal


class CapView(msgspec.Struct):
    limit: Decimal
    used: Decimal
    remaining: Decimal


class RuleTotal(msgspec.Struct):
    rule_id: str
    fund: str | None
    amount: Decimal
    lines: int


class PersonYearView(msgspec.Struct):
    person_key: str
    year: int
    admdvs: str | None
    insutype: str | None
    pack: str | None
    pack_version: str | None
    status_applied: str | None
    subsidy: Decimal
    critical_illness: CriticalIllness
    assistance_base: Decimal
    cap: CapView | None
    rules: list[RuleTotal]
    inpatient: Split
    outpatient: Split
    grants_granted: Decimal
    grants_refused: Decimal
    settlements: int
    cancelled: int
    warnings: int
    last_seq: int | None
    updated_at: dt.datetime | None
    projection_lag: int | None


class TrailEvent(msgspec.Struct):
    seq: int
    idx: int
    type: str
    event_id: str
    correlation_id: str | None
    pack: str | None
    pack_version: str | None
    year: int | None
    prev_hash: str
    hash: str
    recorded_at: dt.datetime | None
    payload: Any


class TrailPage(msgspec.Struct):
    person_key: str
    events: list[TrailEvent]
    next_cursor: str | None
    projection_lag: int | None


_YEAR_SQL = """
SELECT py.*, (SELECT seq FROM projection_checkpoint WHERE projection = 'claims') AS checkpoint,
       (SELECT json_agg(json_build_object('rule_id', r.rule_id, 'fund', r.fund, 'amount', r.amount::text,
                                          'lines', r.lines) ORDER BY r.rule_id)
          FROM person_year_rule r WHERE r.person_key = py.person_key AND r.year = py.year) AS rules
FROM person_year py WHERE py.person_key = $1 AND py.year = $2"""
_RULES = msgspec.json.Decoder(list[RuleTotal] | None)


def _split(row: Any, kind: str) -> Split:
    return Split(row[f"{kind}_count"], row[f"{kind}_medfee"], row[f"{kind}_hifmi"], row[f"{kind}_maf"],
                 row[f"{kind}_hosp"], row[f"{kind}_psn"])


async def read_person_year(deps: ApiDeps, psn_no: str, year: int) -> PersonYearView:
    """The person-year as the API and the console show it."""
    if not 1900 <= year <= 2200:
        raise bad(f"year {year} is out of range")
    key = key_of(deps, psn_no)
    row = await db_of(deps).fetchrow(_YEAR_SQL, key, year)
    if row is None:
        raise not_found(f"person-year {year} of this person")
    deductible = row["ci_deductible"]          # as the person's events recorded it, not today's pack
    progress = min(Decimal(1), row["ci_base"] / deductible) if deductible else None
    cap = None
    if row["cap_limit"] is not None:
        cap = CapView(row["cap_limit"], row["cap_used"], max(Decimal(0), row["cap_limit"] - row["cap_used"]))
    lag = await lag_of(deps, row["checkpoint"])
    return PersonYearView(
        key, year, row["admdvs"], row["insutype"], row["pack"], row["pack_version"], row["status_applied"],
        row["subsidy"], CriticalIllness(row["ci_base"], deductible, progress, row["ci_paid"]), row["assist_base"], cap,
        _RULES.decode(row["rules"] or b"null") or [], _split(row, "inpatient"), _split(row, "outpatient"),
        row["grants_granted"], row["grants_refused"], row["settlements"], row["cancelled"], row["warnings"],
        row["last_seq"], row["updated_at"], lag)


@get("/{psn_no:str}/years/{year:int}", responses=errors(400, 404, 503),
     summary="A person's year: cap, 大病 deductible progress, totals")
async def person_year(psn_no: str, year: int, deps: ApiDeps) -> Response[PersonYearView]:
    view = await read_person_year(deps, psn_no, year)
    return with_lag(view, view.projection_lag)


async def read_person_events(deps: ApiDeps, psn_no: str, year: int | None = None, type: str | None = None,
                             limit: int = 100, cursor: str | None = None) -> TrailPage:
    """One page of a person's audit trail, oldest first."""
    check_limit(limit)
    types = None if type is None else tags_of(type)
    if types is not None and types[0] not in EVENT_TYPES:
        raise bad(f"type is not an event type; known: {sorted(EVENT_TYPES)}")
    after = parse_cursor(cursor)
    key = key_of(deps, psn_no)
    async with db_of(deps).acquire() as conn:
        rows = await conn.fetch(
            "SELECT seq, idx, type, event_id, correlation_id, pack, pack_version, year, prev_hash, hash, recorded_at, "
            "payload FROM ledger_event WHERE person_key = $1 AND ($2::int IS NULL OR year = $2) "
            "AND ($3::text[] IS NULL OR type = ANY($3)) AND (seq, idx) > ($4, $5) ORDER BY seq, idx LIMIT $6",
            key, year, types, after[0], after[1], limit + 1)
        if not rows and cursor is None and not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM ledger_event WHERE person_key = $1)", key):
            raise not_found("this person")
        checkpoint = await conn.fetchval("SELECT seq FROM projection_checkpoint WHERE projection = 'audit_trail'")
    page = rows[:limit]
    events = [TrailEvent(r["seq"], r["idx"], r["type"], r["event_id"], r["correlation_id"], r["pack"],
                         r["pack_version"], r["year"], r["prev_hash"], r["hash"], r["recorded_at"],
                         msgspec.Raw(r["payload"])) for r in page]
    more = f"{page[-1]['seq']}.{page[-1]['idx']}" if len(rows) > limit else None
    return TrailPage(key, events, more, await lag_of(deps, checkpoint))


@get("/{psn_no:str}/events", responses=errors(400, 404, 503),
     summary="A person's audit trail: every event with its hashes and payload")
async def person_events(psn_no: str, deps: ApiDeps, year: int | None = Parameter(default=None, **YEAR),
                        type: str | None = None, limit: int = 100, cursor: str | None = None) -> Response[TrailPage]:
    page = await read_person_events(deps, psn_no, year, type, limit, cursor)
    return with_lag(page, page.projection_lag)


async def read_person_years(deps: ApiDeps, person_key: str) -> list[int]:
    """The years a person has figures for, oldest first."""
    rows = await db_of(deps).fetch("SELECT year FROM person_year WHERE person_key = $1 ORDER BY year", person_key)
    return [r["year"] for r in rows]


def persons_router() -> Router:
    return Router(path="/v1/persons", route_handlers=[person_year, person_events], tags=["reads"],
                  opt={"roles": ("supervisor", "admin")}, exception_handlers=EXCEPTION_HANDLERS)
