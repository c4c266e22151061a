"""Charts drawn on the server as SVG text: readable without JS, in print, and by a screen reader.

Pure functions from figures to markup. Every bar carries its amount as text
(not only its length), each chart has a <title> for assistive technology, and
colours come from CSS classes (`c-<name>`) so print CSS can restyle them.
Amounts stay Decimal; only pixel positions are floats.
"""
from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape

from services.console.i18n import money

Segment = tuple[str, Decimal, str]         # (label, amount, css name)


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
            f'role="img" class="chart"><title>{escape(title)}</title>{"".join(body)}</svg>')


def _rect(x: float, y: float, w: float, h: float, css: str, label: str) -> str:
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" class="c-{css}">'
            f'<title>{escape(label)}</title></rect>')


def text_width(text: str, size: float = 11) -> float:
    """Roughly how wide `text` is drawn: CJK characters are square, Latin ones about half as wide."""
    return sum(size if ord(c) >= 0x2E80 else size * 0.6 for c in text)


def _text(x: float, y: float, text: str, anchor: str = "start", css: str = "") -> str:
    klass = f' class="{css}"' if css else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{klass}>{escape(text)}</text>'


def stacked_bar(title: str, segments: Sequence[Segment], scale: Decimal | None, marker: str | None = None,
                width: int = 640) -> str:
    """One horizontal bar: segments left to right, on a scale of `scale` (e.g. the cap's limit).

    With no scale (an uncapped year) the segments fill the bar. `marker` labels the bar's full
    length (the limit). Segments beyond the scale are drawn to the scale's end, never past it.
    """
    total = sum((amount for _, amount, _ in segments if amount > 0), Decimal(0))
    full = scale if scale and scale > 0 else (total or Decimal(1))
    bar_w, top, height = width - 20, 8, 28
    body = [_rect(10, top, bar_w, height, "room", f"{marker or ''} {money(full)}")]
    x = 10.0
    legend_y = top + height + 22
    legend_x = 10.0
    for label, amount, css in segments:
        if amount <= 0:
            continue
        w = min(float(amount / full) * bar_w, 10 + bar_w - x)
        body.append(_rect(x, top, w, height, css, f"{label} {money(amount)}"))
        x += w
    for label, amount, css in segments:
        body.append(_rect(legend_x, legend_y - 10, 10, 10, css, label))
        entry = f"{label} {money(amount)}"
        body.append(_text(legend_x + 14, legend_y, entry))
        legend_x += 30 + text_width(entry)
    if marker:
        body.append(_text(10 + bar_w, top + height + 40, f"{marker} {money(full)}", "end", "muted"))
    return _svg(width, top + height + 46, title, body)


def progress_bar(title: str, value: Decimal, target: Decimal | None, width: int = 640) -> str:
    """How far `value` has come towards `target` (the 大病 deductible), with both figures written out."""
    share = min(Decimal(1), value / target) if target else Decimal(0)
    bar_w = width - 20
    body = [_rect(10, 8, bar_w, 20, "room", money(target)),
            _rect(10, 8, float(share) * bar_w, 20, "critical_illness", money(value)),
            _text(10, 46, f"{money(value)} / {money(target)} ({share * 100:.0f}%)")]
    return _svg(width, 54, title, body)


def waterfall(title: str, total: tuple[str, Decimal], steps: Sequence[Segment], rest: tuple[str, Decimal],
              width: int = 640, height: int = 260) -> str:
    """Who paid what of one bill: the total, each payer's share hanging from what was left, and the rest.

    `rest` is drawn from zero to its amount, so a reader sees that it equals what the steps
    left over (or, if the figures disagree, that they do).
    """
    bars: list[tuple[str, Decimal, Decimal, str]] = [(total[0], Decimal(0), total[1], "total")]
    level = total[1]
    for label, amount, css in steps:
        bars.append((label, level - amount, level, css))
        level -= amount
    bars.append((rest[0], Decimal(0), rest[1], "person"))
    top_value = max([total[1], rest[1], *(b[2] for b in bars)]) or Decimal(1)
    plot_h, base_y = height - 70, height - 46
    slot = (width - 20) / len(bars)
    body = [f'<line x1="10" y1="{base_y}" x2="{width - 10}" y2="{base_y}" class="axis"/>']
    for i, (label, low, high, css) in enumerate(bars):
        y_high = base_y - float(high / top_value) * plot_h
        y_low = base_y - float(low / top_value) * plot_h
        x = 10 + i * slot + slot * 0.15
        amount = high - low
        body.append(_rect(x, y_high, slot * 0.7, y_low - y_high, css, f"{label} {money(amount)}"))
        body.append(_text(x + slot * 0.35, y_high - 4, money(amount), "middle", "value"))
        body.append(_text(x + slot * 0.35, base_y + 16, label, "middle"))
    return _svg(width, height, title, body)


def month_bars(title: str, rows: Sequence[tuple[str, str, Decimal]], funds: Sequence[tuple[str, str]],
               width: int = 640, height: int = 240) -> str:
    """Money by month, one stacked bar per month, one colour per fund; reversals stack below zero.

    `rows` are (month YYYY-MM, fund, amount); `funds` orders and labels the funds: (code, label).
    """
    months = sorted({m for m, _, _ in rows})
    if not months:
        return _svg(width, 40, title, [_text(10, 24, "—")])
    by = {(m, f): a for m, f, a in rows}
    ups = [sum((max(by.get((m, f), Decimal(0)), Decimal(0)) for f, _ in funds), Decimal(0)) for m in months]
    downs = [sum((min(by.get((m, f), Decimal(0)), Decimal(0)) for f, _ in funds), Decimal(0)) for m in months]
    span = (max(ups) - min(downs)) or Decimal(1)
    legend_h, plot_top, plot_bottom = 22, 30, height - 34
    plot_h = plot_bottom - plot_top
    zero_y = plot_top + float(max(ups) / span) * plot_h
    slot = (width - 20) / len(months)
    body = [f'<line x1="10" y1="{zero_y:.1f}" x2="{width - 10}" y2="{zero_y:.1f}" class="axis"/>']
    legend_x = 10.0
    for code, label in funds:
        body.append(_rect(legend_x, legend_h - 12, 10, 10, code, label))
        body.append(_text(legend_x + 14, legend_h - 3, label))
        legend_x += 30 + text_width(label)
    for i, month in enumerate(months):
        x = 10 + i * slot + slot * 0.15
        up, down = zero_y, zero_y
        for code, label in funds:
            amount = by.get((month, code), Decimal(0))
            h = float(abs(amount) / span) * plot_h
            if amount > 0:
                up -= h
                body.append(_rect(x, up, slot * 0.7, h, code, f"{month} {label} {money(amount)}"))
            elif amount < 0:
                body.append(_rect(x, down, slot * 0.7, h, code, f"{month} {label} {money(amount)}"))
                down += h
        body.append(_text(x + slot * 0.35, up - 4, money(ups[i] + downs[i]), "middle", "value"))
        body.append(_text(x + slot * 0.35, height - 18, month, "middle"))
    return _svg(width, height, title, body)
