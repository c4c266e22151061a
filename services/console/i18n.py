"""Labels in zh-CN (the policy texts' own terms) and English, and how amounts are written.

Labels (labels.py): a key maps to (zh-CN, en). Codes of the ledger (funds,
statuses, event types) are labelled through `code()`, which falls back to the
code itself, so a new code shows up raw rather than failing.
"""
from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from services.console.labels import CODES, LABELS

__all__ = ["CODES", "LABELS", "LANGS", "choose_lang", "code_labeller", "money", "percent", "translator"]

LANGS = ("zh-CN", "en")
DEFAULT_LANG = "zh-CN"
LANG_COOKIE = "console_lang"

def choose_lang(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """`?lang=` first, then the remembered choice, then the browser's languages; zh-CN when nothing matches."""
    for given in (query, cookie):
        found = _match(given)
        if found:
            return found
    ranked = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag))
    for _, _, tag in sorted(ranked):
        found = _match(tag)
        if found:
            return found
    return DEFAULT_LANG


def _match(tag: str | None) -> str | None:
    primary = (tag or "").strip().lower().split("-")[0]
    return {"zh": "zh-CN", "en": "en"}.get(primary)


def translator(lang: str) -> Callable[..., str]:
    i = LANGS.index(lang)

    def t(key: str, **values: Any) -> str:
        text = LABELS[key][i]
        return text.format(**values) if values else text
    return t


def code_labeller(lang: str) -> Callable[[str | None], str]:
    i = LANGS.index(lang)

    def code(value: str | None) -> str:
        if value is None:
            return "—"
        return CODES[value][i] if value in CODES else value
    return code


_CENT = Decimal("0.01")


def money(value: Any) -> str:
    """12,345.60 — two decimals, ROUND_HALF_UP, thousands separated; nothing (None, a missing field) is a dash."""
    text = "" if value is None else str(value)
    if not text:
        return "—"
    return f"{Decimal(text).quantize(_CENT, rounding=ROUND_HALF_UP):,}"


def percent(value: Any) -> str:
    """A ratio as a percentage: 0.7 -> 70%, 0.125 -> 12.5%."""
    text = "" if value is None else str(value)
    if not text:
        return "—"
    text = f"{Decimal(text) * 100:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "%"
