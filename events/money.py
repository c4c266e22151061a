"""Money is Decimal yuan with two decimals, rounded ROUND_HALF_UP (policy.md §1)."""
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def money(value: Decimal | int | str) -> Decimal:
    """Round an exact amount to the cent the way the fund pays it."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def has_at_most_two_decimals(value: Decimal) -> bool:
    return value == value.quantize(CENT) if value.is_finite() else False
