"""examples/*.jsonl replay with exit code 0 and the figures worked by hand in their `_note` fields."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from services.cli.replay import run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def replay(name: str) -> list[dict]:
    out = io.BytesIO()
    assert run(str(EXAMPLES / name), None, out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def settled(results: list[dict], setl_id: str, result: str = "settled") -> dict:
    found = [r for r in results if r["msg_type"] == "settlement_result" and r["setl_id"] == setl_id
             and r["result"] == result]
    assert len(found) == 1, (setl_id, found)
    return found[0]


def figures(r: dict) -> tuple[str, ...]:
    return r["status"], r["hifmi_pay"], r["maf_pay"], r["hosp_part_amt"], r["psn_part_amt"]


@pytest.fixture(scope="module")
def linfen() -> list[dict]:
    return replay("linfen-2022.jsonl")


@pytest.fixture(scope="module")
def qinghai() -> list[dict]:
    return replay("qinghai-2022.jsonl")


@pytest.mark.parametrize("name", ["linfen-2022.jsonl", "qinghai-2022.jsonl"])
def test_one_result_per_line_plus_adjustments(name):
    lines = [l for l in (EXAMPLES / name).read_text().splitlines() if l.strip()]
    results = replay(name)
    adjustments = [r for r in results if r["msg_type"] == "settlement_adjustment"]
    assert len(results) == len(lines) + len(adjustments)


def test_linfen_dibao_tilt_assistance_and_warning(linfen):
    """oop 40,000 − 24,000 = 16,000; 大病 0.80 × (16,000 − 5,000) = 8,800; remaining 7,200; 70% = 5,040;
    psn = 50,000 − 24,000 − 8,800 − 5,040 = 12,160; 7,200 > 0.25 × 27,426 = 6,856.50 → warning."""
    r = settled(linfen, "LF-S001")
    assert figures(r) == ("dibao", "8800.00", "5040.00", "0.00", "12160.00")
    assert r["warnings"] == ["high_self_pay"]
    dup = settled(linfen, "LF-S001", "duplicate")
    assert figures(dup) == figures(r)


def test_linfen_out_of_catalogue_control(linfen):
    """Class II city: 大病 0.80 × 6,000 = 4,800; 70% × 1,200 = 840; hospital 8,000 − 0.20 × 20,000 = 4,000."""
    assert figures(settled(linfen, "LF-S002")) == ("dibao", "4800.00", "840.00", "4000.00", "4360.00")


def test_linfen_returned_poverty_top_up_and_85_percent(linfen):
    """max(0.7 × 5,000, 0.9 × 10,000 − 5,000 − 0) = 4,000 + 0.85 × 2,000 = 1,700 → 5,700; psn 1,300."""
    assert figures(settled(linfen, "LF-S003")) == ("returned_poverty", "0.00", "5700.00", "0.00", "1300.00")


def test_linfen_single_disease(linfen):
    """C34: 大病 0.60 × 18,000 = 10,800; 0.10 × 60,000 = 6,000; hospital 70,000 − 60,000 = 10,000."""
    assert figures(settled(linfen, "LF-S005")) == ("illness_poverty", "10800.00", "6000.00", "10000.00", "1200.00")


def test_linfen_status_choice_cancel_rejections_and_year_close(linfen):
    assert settled(linfen, "LF-S007")["status"] == "at_risk"
    assert settled(linfen, "LF-S007")["maf_pay"] == "13400.45"          # 0.70 × (26,000 − 6,856.50)
    cancel = next(r for r in linfen if r["msg_type"] == "cancel_result")
    assert (cancel["result"], cancel["hifmi_pay"]) == ("reversed", "6000.00")
    assert settled(linfen, "LF-S010")["hifmi_pay"] == "6000.00"        # the restored base
    codes = {(r["setl_id"], r["psn_no"]): r["reason"]["code"] for r in linfen if r.get("result") == "rejected"}
    assert codes == {("LF-S011", "LF-P07"): "unknown_medins", ("LF-S012", "LF-P99"): "not_enrolled",
                     ("LF-S001", "LF-P08"): "setl_id_conflict"}
    closes = [r for r in linfen if r["msg_type"] == "year_close_result"]
    assert [(c["result"], len(c["adjustments"])) for c in closes] == [("closed", 2), ("duplicate", 0)]
    paid = {r["setl_id"]: r["maf_pay"] for r in linfen if r["msg_type"] == "settlement_adjustment"
            and "year end" in r["reason"]}
    assert paid == {"LF-V001": "120.00", "LF-V002": "180.00"}          # 0.30 × 400, 0.30 × 600


def test_linfen_late_recognition_re_decides_the_stay(linfen):
    """LF-S013 with no status: 大病 3,600, psn 12,400; 低保 from 08-01 recognised later (policy.md §12):
    大病 0.80 × 11,000 = 8,800 (+5,200), assistance 0.70 × 7,200 = 5,040, in the identity's reply."""
    assert figures(settled(linfen, "LF-S013")) == (None, "3600.00", "0.00", "0.00", "12400.00")
    i = next(i for i, r in enumerate(linfen) if r["msg_type"] == "identity_result" and r["psn_no"] == "LF-P08")
    [adjustment] = linfen[i]["adjustments"]
    assert linfen[i + 1] == adjustment
    assert (adjustment["setl_id"], adjustment["hifmi_pay"], adjustment["maf_pay"]) == ("LF-S013", "5200.00", "5040.00")


def test_qinghai_low_income_threshold(qinghai):
    """0.60 × (4,000 − 2,500) = 900; then 0.60 × 3,000 = 1,800."""
    assert settled(qinghai, "QH-S001")["maf_pay"] == "900.00"
    assert settled(qinghai, "QH-S002")["maf_pay"] == "1800.00"
    subsidy = next(r for r in qinghai if r["msg_type"] == "subsidy_result" and r["psn_no"] == "QH-P01")
    assert subsidy["subsidy"] == "175.00"                                # 0.50 × 350, a minor


def test_qinghai_expenditure_poverty_retroactive_then_tilted_grant(qinghai):
    """Recognised 2022-07-01: QH-S004 0.50 × 3,600 = 1,800, QH-S005 0.50 × 2,000 = 1,000; the grant of 19,000
    then finds 20,000 − 2,800 = 17,200 and 1,800 is refused."""
    i = next(i for i, r in enumerate(qinghai) if r["msg_type"] == "identity_result" and r["status"] == "expenditure_poverty")
    assert qinghai[i]["adjustments"] == qinghai[i + 1:i + 3]     # the reply carries them whole (§2)
    assert [(r["setl_id"], r["maf_pay"]) for r in qinghai[i + 1:i + 3]] == [("QH-S004", "1800.00"), ("QH-S005", "1000.00")]
    g = next(r for r in qinghai if r["msg_type"] == "grant_result" and r["result"] == "settled")
    assert (g["granted"], g["refused"], g["reason"]["code"]) == ("17200.00", "1800.00", "over_annual_cap")


def test_qinghai_employee_warning_and_shared_cap(qinghai):
    assert settled(qinghai, "QH-S009")["warnings"] == ["illness_poverty"]   # 60,000 + 50,000 > 100,000
    assert settled(qinghai, "QH-S008")["warnings"] == []
    assert figures(settled(qinghai, "QH-S006")) == ("dibao", "3400.00", "4620.00", "0.00", "1980.00")
    assert settled(qinghai, "QH-V001")["cap"] == {"limit": "20000.00", "used": "4920.00", "remaining": "15080.00"}
