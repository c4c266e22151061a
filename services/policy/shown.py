"""How decisions show money in results: the cap that binds the status, lines at two decimals.

Every amount in a result, every line's `base` and `amount`, and every cap figure
is a string with exactly two decimals (policy.md §12); events keep the exact
figures a supervisor recomputes from.
"""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from events.money import ZERO, money
from events.results import Cap, Fund, Line
from services.policy.pack import Pack


def cap_of(limit: Decimal | None, used: Decimal) -> Cap | None:
    """A cap as results show it; None where no cap applies."""
    if limit is None:
        return None
    return Cap(money(limit), money(used), money(max(ZERO, limit - used)))


def binding_cap(pack: Pack, status: str | None, shared_used: Decimal, own_used: Mapping[str, Decimal]) -> Cap | None:
    """The cap that binds the applied status: its own counter where the pack names one (临汾 二(四)2
    低收入救助对象 1万, policy.md §12), else the shared annual limit (policy.md §9)."""
    rule_id = pack.cap_counters.get(status) if status is not None else None
    if rule_id is not None:
        return cap_of(pack.own_cap_of(rule_id), own_used.get(rule_id, ZERO))
    return cap_of(pack.status_cap(status), shared_used)


def result_line(fund: Fund, rule_id: str, clause: str, base: Decimal, ratio: Decimal | None,
                amount: Decimal) -> Line:
    return Line(fund, rule_id, clause, money(base), ratio, money(amount))
