"""大病保险 on the cumulative annual oop above the deductible (policy.md §4)."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from events.money import ZERO, money
from services.policy.pack import Pack


@dataclass(frozen=True, slots=True)
class CiTerms:
    rule_id: str
    clause: str
    deductible: Decimal
    ratio: Decimal
    cap: Decimal | None


_TERMS: dict[int, tuple[Pack, dict[str | None, CiTerms]]] = {}


def terms_for(pack: Pack, status: str | None) -> CiTerms:
    """Base terms, or the tilt of the applied status (青海 三(二)2, 临汾 二(三)); computed once per pack and status.

    The cache is keyed by the pack object itself (held, so its id cannot be reused): a what-if pack with the
    same id and version gets its own terms.
    """
    entry = _TERMS.get(id(pack))
    if entry is None or entry[0] is not pack:
        if len(_TERMS) > 64:
            _TERMS.clear()
        entry = _TERMS[id(pack)] = (pack, {})
    found = entry[1].get(status)
    if found is None:
        found = entry[1][status] = _terms(pack, status)
    return found


def _terms(pack: Pack, status: str | None) -> CiTerms:
    base = pack.critical_illness
    for tilt in pack.critical_illness_tilts:
        if status in tilt.statuses:
            return CiTerms(tilt.rule_id, tilt.clause, base.deductible * tilt.deductible_factor,
                           tilt.ratio, base.cap if tilt.keep_base_cap else None)
    return CiTerms(base.rule_id, base.clause, base.deductible, base.ratio, base.cap)


def ci_payment(terms: CiTerms, base_before: Decimal, oop: Decimal, paid_before: Decimal) -> Decimal:
    """ratio × (max(0, B + oop − D) − max(0, B − D)), within the annual cap where one is set."""
    above = max(ZERO, base_before + oop - terms.deductible) - max(ZERO, base_before - terms.deductible)
    amount = money(terms.ratio * above)
    if terms.cap is not None:
        amount = min(amount, max(ZERO, terms.cap - paid_before))
    return amount
