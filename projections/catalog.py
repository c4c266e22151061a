"""The projections: which folds feed which tables, each owned and checkpointed as one unit.

A projection is the unit of ownership (one advisory lock), of checkpoint and of
rebuild: its tables always move together. `claims` groups the settlement,
usage, fund and warning tables because their folds share the settlement index.
"""
from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from events import ledger as ev
from projections.claims import FUND_FLOW, LINE, SETTLEMENT, WARNING, ClaimsState, SetlMeta, fold_claims
from projections.model import Message, Op, Table
from projections.trail import (DEAD_LETTER, FORGED_MESSAGE, LEDGER_COMMIT, LEDGER_EVENT, fold_dead_letters,
                               fold_trail)
from projections.usage import PERSON_YEAR, RULE_TOTAL, fold_usage

Load = Callable[[Any, str, Any, list], Awaitable[None]]


@dataclass(frozen=True)
class Projection:
    name: str
    tables: tuple[Table, ...]
    new_state: Callable[[], Any]
    fold: Callable[[Any, Message], list[Op]]
    missing: Callable[[Any, list[Message]], list] | None = None   # state entries a batch needs from SQL
    load: Load | None = None                                       # fetch them from the projection's tables


def _fold_claims_and_usage(state: ClaimsState, msg: Message) -> list[Op]:
    return [*fold_claims(state, msg), *fold_usage(state, msg)]


LATER = (ev.AssistancePaid, ev.HospitalBorne, ev.CriticalIllnessPaid, ev.SettlementRedecided,   # refer to a
         ev.SettlementCancelled, ev.PaymentReversed, ev.WarningRaised)                        # settlement
MAX_INDEX = 100_000   # settlements kept in memory (~1 kB each); past it the older half is dropped


def evict_oldest(state: ClaimsState, limit: int) -> bool:
    """Past `limit` settlements, drop the older half (insertion order: the oldest go first)."""
    if len(state.settlements) <= limit:
        return False
    for key in list(itertools.islice(state.settlements, limit // 2)):
        del state.settlements[key]
    return True


def _missing_settlements(state: ClaimsState, msgs: list[Message]) -> list[tuple[str, str]]:
    """Index entries this batch refers to but neither creates nor has in memory."""
    evict_oldest(state, MAX_INDEX)
    created = {(m.person_key, e.setl_id) for m in msgs for e in m.events if isinstance(e, ev.SettlementFacts)}
    wanted = {(m.person_key, e.setl_id) for m in msgs if m.person_key for e in m.events
              if isinstance(e, LATER) and getattr(e, "setl_id", None)}
    return [k for k in wanted - created if k not in state.settlements]


async def load_settlements(conn, schema: str, state: ClaimsState, keys: list[tuple[str, str]]) -> None:
    rows = await conn.fetch(
        f'SELECT setl_id, person_key, admdvs, inpatient, ci_base_added, assist_base_added, medfee_sumamt, '
        f'psn_part_amt, maf_adjusted, hifmi_adjusted, assist_base_delta FROM "{schema}".settlement '
        f'WHERE (person_key, setl_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))',
        [k[0] for k in keys], [k[1] for k in keys])
    for r in rows:
        state.settlements[(r["person_key"], r["setl_id"])] = SetlMeta(
            r["admdvs"], r["inpatient"], r["ci_base_added"], r["assist_base_added"], r["medfee_sumamt"],
            r["psn_part_amt"], r["maf_adjusted"], r["hifmi_adjusted"], r["assist_base_delta"])


PROJECTIONS: dict[str, Projection] = {p.name: p for p in (
    Projection("claims", (SETTLEMENT, LINE, FUND_FLOW, WARNING, PERSON_YEAR, RULE_TOTAL), ClaimsState,
               _fold_claims_and_usage, _missing_settlements, load_settlements),
    Projection("audit_trail", (LEDGER_EVENT, LEDGER_COMMIT, FORGED_MESSAGE), lambda: None, fold_trail),
    Projection("dead_letters", (DEAD_LETTER,), lambda: None, fold_dead_letters),
)}


def select(names: Iterable[str] | None) -> list[Projection]:
    """The named projections (all when `names` is empty); an unknown name is a ValueError."""
    names = list(names or PROJECTIONS)
    unknown = [n for n in names if n not in PROJECTIONS]
    if unknown:
        raise ValueError(f"unknown projection(s) {unknown}; known: {sorted(PROJECTIONS)}")
    return [PROJECTIONS[n] for n in names]
