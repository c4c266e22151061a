"""The supervisors' morning numbers: decisions today and this year, warnings standing, dead letters waiting.

Days and years are counted in China Standard Time (UTC+8, no daylight saving),
the time of the platforms that send the settlements. A decision is one commit
on the stream (one row sequence in the audit trail), a rejection included.
"""
from __future__ import annotations

import datetime as dt

import msgspec
from litestar import Response, Router, get

from services.api.deps import ApiDeps
from services.api.read_common import EXCEPTION_HANDLERS, db_of, lag_of, with_lag
from services.api.responses import errors

CST = dt.timezone(dt.timedelta(hours=8), "CST")


class OverviewView(msgspec.Struct):
    day: dt.date
    decisions_today: int
    decisions_this_year: int
    warnings_active: int
    dead_letters_pending: int          # never redriven
    dead_letters_failed: int           # last redrive rejected again
    projection_lag: int | None         # the largest lag of the three projections


# A global key's claim (`key_claimed` on ledger.ref.key.*, ADR 0013) is bookkeeping of a decision, not one.
_COUNTS = """
SELECT (SELECT count(DISTINCT seq) FROM ledger_event WHERE recorded_at >= $1 AND type <> 'key_claimed') AS today,
       (SELECT count(DISTINCT seq) FROM ledger_event WHERE recorded_at >= $2 AND type <> 'key_claimed') AS this_year,
       (SELECT count(*) FROM warning w LEFT JOIN settlement s ON s.setl_id = w.setl_id AND s.person_key = w.person_key
         WHERE NOT coalesce(s.cancelled, false)) AS warnings_active,
       (SELECT count(*) FROM dead_letter d WHERE NOT EXISTS
         (SELECT 1 FROM dead_letter_redrive r WHERE r.dead_letter_id = d.event_id)) AS pending,
       (SELECT count(*) FROM dead_letter d WHERE (SELECT r.ok FROM dead_letter_redrive r
         WHERE r.dead_letter_id = d.event_id ORDER BY r.id DESC LIMIT 1) = false) AS failed,
       (SELECT min(seq) FROM projection_checkpoint) AS checkpoint"""


async def read_overview(deps: ApiDeps, now: dt.datetime | None = None) -> OverviewView:
    today = (now or dt.datetime.now(CST)).astimezone(CST).date()
    day_start = dt.datetime.combine(today, dt.time(), CST)
    year_start = dt.datetime(today.year, 1, 1, tzinfo=CST)
    row = await db_of(deps).fetchrow(_COUNTS, day_start, year_start)
    lag = await lag_of(deps, row["checkpoint"])
    return OverviewView(today, row["today"], row["this_year"], row["warnings_active"], row["pending"],
                        row["failed"], lag)


@get("/overview", responses=errors(400, 503), summary="Decisions today and this year (UTC+8), warnings standing, dead letters waiting")
async def overview(deps: ApiDeps) -> Response[OverviewView]:
    view = await read_overview(deps)
    return with_lag(view, view.projection_lag)


def overview_router() -> Router:
    return Router(path="/v1", route_handlers=[overview], tags=["reads"], opt={"roles": ("supervisor", "admin")},
                  exception_handlers=EXCEPTION_HANDLERS)
