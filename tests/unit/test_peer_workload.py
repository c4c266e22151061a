"""The workload of bench_peer (shared/bench/peer-workload.md): its shape, its rule, and what the ledger pays on it.

The benchmark itself (pyeventsourcing on PostgreSQL) runs only in `make bench`: it needs the bench extra.
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from benchmarks.peer_workload import (Settlement, Workload, generate, model_caps, settlement_line, setup_lines)
from harness import Ledger

DAY = dt.date(2022, 3, 1)


def distances(messages: list[Settlement]) -> list[int]:
    first: dict[str, int] = {}
    out = []
    for i, m in enumerate(messages):
        if m.setl_id in first:
            out.append(i - first[m.setl_id])
        else:
            first[m.setl_id] = i
    return out


def test_messages_have_the_documented_shape():
    w = generate(persons=50, settlements=2000, duplicates=200, warmup=20)
    assert len(w.messages) == 2200 and w.unique == 2000
    gaps = distances(w.messages)
    assert len(gaps) == 200 and min(gaps) >= 1 and max(gaps) <= 1000
    assert {m.psn_no for m in w.messages} <= {f"P{n:05d}" for n in range(50)}
    assert all(Decimal(100) <= m.amount <= Decimal(5000) and m.amount == m.amount.quantize(Decimal("0.01"))
               for m in w.messages)
    assert generate(persons=50, settlements=2000, duplicates=200, warmup=20) == w


def test_crowded_resends_still_come_1_to_1000_messages_after_their_original():
    w = generate(persons=2, settlements=300, duplicates=250, warmup=0)
    gaps = distances(w.messages)
    assert len(w.messages) == 550 and len(gaps) == 250
    assert 1 <= min(gaps) and max(gaps) <= 1000


def test_model_pays_70_percent_within_the_60000_cap_once_per_setl_id():
    s = lambda setl_id, psn, amount: Settlement(setl_id, psn, Decimal(amount), DAY)  # noqa: E731
    caps = model_caps([s("S1", "P", "50000.00"), s("S2", "P", "50000.00"), s("S1", "P", "50000.00"),
                       s("S3", "Q", "100.05")])
    assert caps == {"P": Decimal("60000.00"),     # 35,000 then min(35,000, 60,000 − 35,000)
                    "Q": Decimal("70.04")}        # 70.035 half-up


def test_ledger_pays_the_rule_until_critical_illness_starts():
    """Linfen 低保: 大病 above half the 10,000 deductible at 80% (二(三)), then 70% of what remains (二(四)1)."""
    ledger = Ledger()
    for line in setup_lines(Workload(["P00000"], [], 0)):
        ledger.send_raw(line)
    first = ledger.send_raw(settlement_line(Settlement("S000001", "P00000", Decimal("4000.00"), DAY)))[0]
    second = ledger.send_raw(settlement_line(Settlement("S000002", "P00000", Decimal("4000.00"), DAY)))[0]
    assert (first["result"], first["hifmi_pay"], first["maf_pay"]) == ("settled", "0.00", "2800.00")
    assert (second["hifmi_pay"], second["maf_pay"], second["cap"]["used"]) == ("2400.00", "1120.00", "3920.00")
    assert json.loads(settlement_line(Settlement("S000003", "P00000", Decimal("100.00"), DAY)))["hifp_pay"] == "0.00"
