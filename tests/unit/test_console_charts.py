"""The console's SVG charts and labels: hand-worked figures, parsed back as XML."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import pytest

from services.console import charts
from services.console.i18n import LABELS, choose_lang, code_labeller, money, percent, translator

SVG = "{http://www.w3.org/2000/svg}"
D = Decimal


def rects(svg: str) -> list[ET.Element]:
    return ET.fromstring(svg).findall(f"{SVG}rect")


def texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_stacked_bar_draws_each_part_on_the_cap_scale() -> None:
    svg = charts.stacked_bar("年度救助限额", [("住院", D("5880"), "inpatient"), ("门诊", D("300"), "outpatient"),
                                          ("倾斜", D("0"), "grant")], D("60000"), "限额", width=620)
    root = ET.fromstring(svg)
    assert root.find(f"{SVG}title").text == "年度救助限额" and root.get("role") == "img"
    bars = {r.get("class"): float(r.get("width")) for r in rects(svg)[:3]}
    assert bars["c-room"] == 600.0                          # the limit is the whole bar
    assert bars["c-inpatient"] == pytest.approx(600 * 5880 / 60000)  # 58.8 px
    assert bars["c-outpatient"] == pytest.approx(600 * 300 / 60000, abs=0.05)
    assert "住院 5,880.00" in texts(svg) and "限额 60,000.00" in texts(svg)


def test_stacked_bar_never_draws_past_the_limit_and_fills_when_uncapped() -> None:
    over = charts.stacked_bar("cap", [("a", D("50000"), "inpatient"), ("b", D("30000"), "outpatient")], D("60000"))
    widths = [float(r.get("width")) for r in rects(over) if r.get("class") in ("c-inpatient", "c-outpatient")
              and r.get("y") == "8.0"]                      # the bar, not the legend's swatches
    assert sum(widths) == pytest.approx(620.0)              # 80,000 on a 60,000 cap stops at the end
    free = charts.stacked_bar("cap", [("a", D("100"), "inpatient"), ("b", D("300"), "outpatient")], None)
    widths = [float(r.get("width")) for r in rects(free) if r.get("class") in ("c-inpatient", "c-outpatient")
              and r.get("y") == "8.0"]
    assert widths == [pytest.approx(155.0), pytest.approx(465.0)]


def test_progress_bar_caps_at_the_deductible() -> None:
    svg = charts.progress_bar("起付线", D("22000"), D("5000"), width=520)
    assert float(rects(svg)[1].get("width")) == 500.0 and "22,000.00 / 5,000.00 (100%)" in texts(svg)
    half = charts.progress_bar("起付线", D("2500"), D("5000"), width=520)
    assert float(rects(half)[1].get("width")) == 250.0 and "2,500.00 / 5,000.00 (50%)" in texts(half)


def test_waterfall_hangs_each_payer_from_what_was_left() -> None:
    # LF-S001: 50,000 total; basic 24,000, 大病 8,800, assistance 5,040, hospital 0; the person 12,160
    svg = charts.waterfall("三重", ("总费用", D("50000")), [("基本", D("24000"), "basic"),
                           ("大病", D("8800"), "critical_illness"), ("救助", D("5040"), "assistance"),
                           ("医院", D("0"), "hospital")], ("个人", D("12160")), height=260)
    bars = [r for r in rects(svg)]
    base_y, plot_h = 214.0, 190.0
    top = {r.get("class"): (float(r.get("y")), float(r.get("height"))) for r in bars}
    assert top["c-total"] == (pytest.approx(base_y - plot_h), pytest.approx(plot_h))
    assert top["c-basic"][0] == pytest.approx(base_y - plot_h)                 # starts at the total
    y, h = top["c-critical_illness"]
    assert y == pytest.approx(base_y - plot_h * 26000 / 50000, abs=0.05)     # hangs from 50,000 − 24,000
    assert h == pytest.approx(plot_h * 8800 / 50000, abs=0.05)
    assert top["c-person"][1] == pytest.approx(plot_h * 12160 / 50000, abs=0.05)
    assert texts(svg)[:2] == ["50,000.00", "总费用"] and "12,160.00" in texts(svg)


def test_month_bars_stack_funds_and_put_reversals_below_zero() -> None:
    rows = [("2022-01", "critical_illness", D("300")), ("2022-01", "assistance", D("100")),
            ("2022-02", "assistance", D("-100"))]
    svg = charts.month_bars("flows", rows, [("critical_illness", "大病保险"), ("assistance", "医疗救助")])
    line = ET.fromstring(svg).find(f"{SVG}line")
    zero = float(line.get("y1"))
    plot_h = 240 - 34 - 30
    assert zero == pytest.approx(30 + plot_h * 400 / 500, abs=0.05)           # 400 up, 100 down
    month_rects = [r for r in rects(svg) if r.find(f"{SVG}title").text.startswith("2022")]
    down = next(r for r in month_rects if "2022-02" in r.find(f"{SVG}title").text)
    assert float(down.get("y")) == pytest.approx(zero, abs=0.05)
    assert float(down.get("height")) == pytest.approx(plot_h * 100 / 500, abs=0.05)
    assert {"400.00", "-100.00", "2022-01", "2022-02", "大病保险"} <= set(texts(svg))
    assert "—" in texts(charts.month_bars("empty", [], []))


def test_chart_text_is_escaped() -> None:
    svg = charts.stacked_bar("<b>&", [("<script>", D("1"), "inpatient")], D("2"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)


def test_money_is_two_decimals_half_up_with_thousands() -> None:
    assert money(D("12345.6")) == "12,345.60" and money("1234567.005") == "1,234,567.01"
    assert money(D("0.125")) == "0.13" and money(D("-2.5")) == "-2.50" and money(0) == "0.00"
    assert money(None) == "—" and money("") == "—"
    assert percent(D("0.7")) == "70%" and percent("0.125") == "12.5%" and percent(D("1")) == "100%"


def test_language_is_the_query_then_the_cookie_then_the_browser_then_chinese() -> None:
    assert choose_lang(None, None, None) == "zh-CN"
    assert choose_lang("en", "zh-CN", "zh") == "en" and choose_lang(None, "en", "zh-CN") == "en"
    assert choose_lang("fr", None, "fr-FR,en;q=0.8,zh;q=0.5") == "en"
    assert choose_lang(None, None, "de, zh-TW;q=0.9, en;q=0.4") == "zh-CN"
    assert choose_lang(None, None, "en;q=0.2, zh;q=x") == "en"               # a bad weight counts as 0
    t = translator("en")
    assert translator("zh-CN")("cap") == "年度救助限额" and t("cap") == "Annual assistance cap"
    assert t("shown_rows", a=1, b=100, n=250) == "1–100 of 250; the CSV has them all."
    assert code_labeller("zh-CN")("dibao") == "低保对象" and code_labeller("en")("new_code") == "new_code"


def test_every_label_a_template_uses_exists_in_both_languages() -> None:
    used = set()
    for template in (Path(charts.__file__).parent / "templates").glob("*.html"):
        used |= set(re.findall(r"""\bt\(["']([a-z0-9_.]+)["']""", template.read_text(encoding="utf-8")))
    prefixes = {u for u in used if u.endswith(".")}           # t("job." ~ status): one label per value
    assert used and used - prefixes - set(LABELS) == set()
    for prefix in prefixes:
        assert [k for k in LABELS if k.startswith(prefix)], prefix
    assert all(zh and en for zh, en in LABELS.values())
