"""Assistance line formulas, named by the packs (`formula = "…"`), and the caps they run into.

Each function is the arithmetic of one clause; `plan_line` applies the caps of
policy.md §9 and never pays more than is still owed (policy.md §8.2).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import msgspec

from events.money import ZERO, money
from services.policy.pack import LineRule, Pack


class Stay(msgspec.Struct, frozen=True):
    """The figures of one settlement that line formulas read."""
    year: int
    medfee_sumamt: Decimal
    fulamt_ownpay_amt: Decimal
    inscp_scp_amt: Decimal
    hifp_pay: Decimal
    oth_pay: Decimal
    ci_paid: Decimal
    remaining: Decimal            # oop − ci: in-scope cost left after basic and 大病
    in_province: bool
    ooc_share: Decimal | None     # control share × total where out-of-catalogue control applies


class PlannedLine(msgspec.Struct, frozen=True):
    fund: str
    rule_id: str
    clause: str
    base: Decimal
    ratio: Decimal | None
    threshold: Decimal | None
    cumulative_before: Decimal | None
    formula_amount: Decimal
    counter: str
    cap_limit: Decimal | None
    cap_used_before: Decimal | None
    amount: Decimal
    in_scope: bool


class Raw(msgspec.Struct, frozen=True):
    base: Decimal
    amount: Decimal
    threshold: Decimal | None = None
    cumulative_before: Decimal | None = None
    in_scope: bool = True


def share_of_remaining(rule: LineRule, stay: Stay, **_) -> Raw:
    return Raw(stay.remaining, rule.ratio * stay.remaining)


def share_above_annual_threshold(rule: LineRule, stay: Stay, pack: Pack, base_before: Decimal, **_) -> Raw | None:
    threshold = rule.threshold
    if rule.threshold_income_share is not None:     # raises MissingParameter for a year the pack lacks
        threshold = pack.income_threshold(rule.threshold_income_share, stay.year)
    if threshold is None:
        return None
    above = max(ZERO, base_before + stay.remaining - threshold) - max(ZERO, base_before - threshold)
    return Raw(stay.remaining, rule.ratio * above, threshold, base_before)


def top_up_to_share_of_in_scope(rule: LineRule, stay: Stay, **_) -> Raw:
    """临汾 二(四)1 as settled in policy.md §11: min(remaining, max(0.7 r, 0.9 in_scope − basic − ci))."""
    amount = rule.ratio * stay.remaining
    if stay.in_province and rule.target is not None:
        topped = rule.target * stay.inscp_scp_amt - stay.hifp_pay - stay.ci_paid
        amount = min(stay.remaining, max(amount, topped))
    return Raw(stay.remaining, amount)


def top_up_with_other_pay(rule: LineRule, stay: Stay, **_) -> Raw:
    """临汾 二(四)5: veterans' subsidy (oth_pay) plus assistance reaches 70% of remaining."""
    return Raw(stay.remaining, max(ZERO, rule.ratio * stay.remaining - stay.oth_pay))


def share_of_compliant_left(rule: LineRule, stay: Stay, paid_in_scope: Decimal, **_) -> Raw:
    """临汾 二(四)3: on the compliant cost left after every other payment."""
    left = max(ZERO, stay.remaining - paid_in_scope)
    return Raw(left, rule.ratio * left)


def share_of_ooc_within_control(rule: LineRule, stay: Stay, **_) -> Raw | None:
    """临汾 二(六): out-of-catalogue cost within the control share; policy.md §11."""
    if stay.ooc_share is None:
        return None
    base = min(stay.fulamt_ownpay_amt, stay.ooc_share)
    return Raw(base, rule.ratio * base, in_scope=False)


FORMULAS: dict[str, Callable[..., Raw | None]] = {
    f.__name__: f for f in (share_of_remaining, share_above_annual_threshold, top_up_to_share_of_in_scope,
                            top_up_with_other_pay, share_of_compliant_left, share_of_ooc_within_control)
}


@dataclass(slots=True)
class Room:
    """What is still payable inside one settlement while its lines are planned."""
    owed: Decimal                 # total − basic − other − 大病 − lines so far
    in_scope: Decimal             # remaining − in-scope lines so far
    cap_limit: Decimal | None     # shared limit of the applied status (None = uncapped)
    cap_used: Decimal             # shared counter including lines so far
    own_used: dict[str, Decimal]


def plan_line(rule_id: str, clause: str, ratio: Decimal | None, raw: Raw, counter: str,
              own_cap: Decimal | None, room: Room, fund: str = "assistance") -> PlannedLine | None:
    """Bound a formula's amount by the caps and by what is owed, then take it out of the room."""
    formula_amount = money(max(ZERO, raw.amount))
    amount = formula_amount
    cap_limit = cap_used_before = None
    if counter == "shared" and room.cap_limit is None:
        counter = "none"           # policy.md §11: a status without a cap makes its lines uncapped
    if counter == "shared":
        cap_limit, cap_used_before = room.cap_limit, room.cap_used
        amount = min(amount, max(ZERO, cap_limit - cap_used_before))
    if own_cap is not None:
        own_before = room.own_used.get(rule_id, ZERO)
        amount = min(amount, max(ZERO, own_cap - own_before))
        if counter == "own":
            cap_limit, cap_used_before = own_cap, own_before
    amount = min(amount, max(ZERO, room.owed))
    if raw.in_scope:
        amount = min(amount, max(ZERO, room.in_scope))
    if formula_amount == ZERO and amount == ZERO:
        return None
    room.owed -= amount
    if raw.in_scope:
        room.in_scope -= amount
    if counter == "shared":
        room.cap_used += amount
    if counter in ("shared", "own"):
        room.own_used[rule_id] = room.own_used.get(rule_id, ZERO) + amount
    return PlannedLine(fund, rule_id, clause, raw.base, ratio, raw.threshold, raw.cumulative_before,
                       formula_amount, counter, cap_limit, cap_used_before, amount, raw.in_scope)
