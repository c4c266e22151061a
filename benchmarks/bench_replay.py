"""Settlements decided per second by the one decision path of `ledger replay` (Handler + MemoryStore), one core.

Generates 100,000 settlements over 10,000 persons (`--quick`: 10,000 over 1,000) of Linfen and Qinghai,
with their hospitals, statuses and enrolments, as JSON lines. The reference data and persons are replayed
first (not timed); then the settlement lines are timed through `Handler.handle` with every result encoded,
as `ledger replay` does. Baseline, same run and same lines: a bare msgspec decode + encode of each line.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import time
from decimal import Decimal
from collections import Counter

from benchmarks.report import Row, peak_rss_mb
from events.messages import DECODER, ENCODER
from events.money import ZERO, money
from events.results import encode_result
from services.cli.replay import FREEZE_EVERY, replay_handler
from services.policy.pack import PackSet

TARGET = 20_000.0           # settlements per second
SEED = 20220101

AREAS = {   # area → (admdvs codes of persons, statuses with their share among status holders)
    "linfen": (["141002", "141021", "141081"],
               {"dibao": 30, "tekun": 8, "returned_poverty": 10, "at_risk": 15, "severe_disability": 8,
                "low_income_elderly": 6, "low_income_minor": 3, "key_entitled": 4, "stable_out_of_poverty": 8,
                "low_income_applicant": 4, "illness_poverty": 2, "monitored_hardship": 2}),
    "qinghai": (["630102", "630121", "632221"],
                {"dibao": 30, "tekun": 6, "orphan": 2, "low_income": 12, "dibao_marginal": 14, "rural_at_risk": 18,
                 "severe_disability": 6, "key_entitled": 3, "returned_poverty": 5, "expenditure_poverty": 4}),
}
DISEASES = ["K35.9", "J18.9", "I63.9", "E11.9", "C34.1", "N18.5", "C16.0", "I21.0", "S72.0", "E75.2"]


def _line(message: dict) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def _yuan(value: Decimal) -> str:
    return str(money(value))


def _share(rng: random.Random, amount: Decimal, low: int, high: int) -> Decimal:
    """A random share of `amount` between low‰ and high‰ (per mille), in whole cents."""
    return money(amount * rng.randrange(low, high) / 1000)


def _lognormal_yuan(rng: random.Random, mu: float, sigma: float) -> Decimal:
    """Cost drawn from a log-normal (the draw is a float; the money is whole cents)."""
    return Decimal(int(rng.lognormvariate(mu, sigma) * 100)) / 100


def generate(settlements: int, persons: int, seed: int = SEED) -> tuple[list[bytes], list[bytes]]:
    """(setup lines: hospitals, statuses, enrolments; settlement lines), deterministic for a seed."""
    rng = random.Random(seed)
    setup: list[bytes] = []
    hospitals: dict[str, list[str]] = {}
    for area, (codes, _) in AREAS.items():
        hospitals[area] = []
        for i in range(20):
            code = f"{area[:2].upper()}{i:03d}"
            hospitals[area].append(code)
            setup.append(_line({
                "msg_type": "medins", "fixmedins_code": code, "fixmedins_name": f"{area} hospital {i}",
                "admdvs": codes[0], "designated": i % 10 != 9, "in_province": i % 7 != 6,
                "ooc_class": ["I", "II_city", "II_county_III", None][i % 4], "serious_disease_designated": i % 3 == 0}))
    people = []
    for n in range(persons):
        area = "linfen" if n % 2 == 0 else "qinghai"
        codes, statuses = AREAS[area]
        admdvs = rng.choice(codes)
        psn_no = f"{admdvs}{n:08d}"
        insutype = "310" if rng.random() < 0.15 else "390"
        if rng.random() < 0.3:                  # about three in ten hold a status
            for status in set(rng.choices(list(statuses), weights=list(statuses.values()), k=rng.choice([1, 1, 2]))):
                setup.append(_line({"msg_type": "psn_identity", "psn_no": psn_no, "admdvs": admdvs, "status": status,
                                    "action": "grant", "begndate": "2021-06-01", "source_dept": "民政",
                                    "doc_no": f"D{n}-{status}"}))
        birth = dt.date(rng.randint(1935, 2021), rng.randint(1, 12), rng.randint(1, 28))
        setup.append(_line({"msg_type": "enrolment", "psn_no": psn_no, "admdvs": admdvs, "brdy": str(birth),
                            "year": 2022, "insutype": insutype,
                            "contribution_std": "320" if area == "linfen" else "350",
                            "enrol_date": "2022-01-05", "in_normal_period": True}))
        people.append((psn_no, admdvs, area, insutype))
    lines: list[bytes] = []
    for i in range(settlements):
        psn_no, admdvs, area, insutype = rng.choice(people)
        day = dt.date(2022, 1, 1) + dt.timedelta(days=rng.randrange(365))
        outpatient = rng.random() < 0.3
        if outpatient:
            in_scope = _lognormal_yuan(rng, 6.5, 0.8)
            ooc = _share(rng, in_scope, 0, 100)
            begin, kind = day, rng.choice([("14", "inpatient_managed", False), ("14", "quota", False),
                                            ("14", "inpatient_managed", True), ("11", None, False)])
        else:
            in_scope = _lognormal_yuan(rng, 9.5, 0.9)
            ooc = _share(rng, in_scope, 0, 250)
            begin, kind = day - dt.timedelta(days=rng.randint(1, 20)), ("21", None, False)
        hifp = _share(rng, in_scope, 450, 800)
        total = in_scope + ooc + (Decimal(rng.randrange(0, 50_000)) / 100 if rng.random() < 0.1 else ZERO)
        oth = _share(rng, total - hifp, 0, 100) if rng.random() < 0.05 else ZERO
        lines.append(_line({
            "msg_type": "settlement", "setl_id": f"S{i:07d}", "mdtrt_id": f"M{i:07d}", "psn_no": psn_no,
            "admdvs": admdvs, "insutype": insutype, "med_type": kind[0], "chronic_mgmt": kind[1],
            "special_drug": kind[2], "fixmedins_code": rng.choice(hospitals[area]), "begndate": str(begin),
            "enddate": str(day), "setl_time": f"{day}T10:00:00+08:00", "dise_codg": rng.choice(DISEASES),
            "medfee_sumamt": _yuan(total), "fulamt_ownpay_amt": _yuan(ooc), "inscp_scp_amt": _yuan(in_scope),
            "hifp_pay": _yuan(hifp), "oth_pay": _yuan(oth)}))
    return setup, lines


def baseline(lines: list[bytes]) -> float:
    """Seconds for a bare msgspec decode of each line into its typed message and encode back."""
    decode, encode = DECODER.decode, ENCODER.encode
    start = time.perf_counter()
    for line in lines:
        encode(decode(line))
    return time.perf_counter() - start


async def replay(setup: list[bytes], lines: list[bytes], freeze_every: int = FREEZE_EVERY) -> tuple[float, float, Counter]:
    """(setup seconds, settlement seconds, result counts) through Handler.handle, results encoded,
    with the memory store set up as `ledger replay` sets it up."""
    handler = replay_handler(PackSet.from_dir(), freeze_every)
    out = Counter()
    start = time.perf_counter()
    for line in setup:
        for result in await handler.handle(line, source="bench"):
            encode_result(result)
    setup_s = time.perf_counter() - start
    start = time.perf_counter()
    for line in lines:
        for result in await handler.handle(line, source="bench"):
            encode_result(result)
            out[getattr(result, "result", "?")] += 1
    return setup_s, time.perf_counter() - start, out


async def run(args) -> list[Row]:
    settlements = 10_000 if getattr(args, "quick", False) else 100_000
    persons = settlements // 10
    setup, lines = generate(settlements, persons)
    base_s = baseline(lines)
    setup_s, replay_s, counts = await replay(setup, lines)
    _, plain_s, _ = await replay(setup, lines, freeze_every=0)
    rate, base_rate = settlements / replay_s, settlements / base_s
    notes = {"settlements": settlements, "persons": persons, "setup_messages": len(setup),
             "setup_seconds": round(setup_s, 3), "settlement_seconds": round(replay_s, 3),
             "results": dict(counts), "peak_rss_mb": round(peak_rss_mb(), 1)}
    return [
        Row(name="replay: settlements decided/s (Handler+MemoryStore, 1 core)", value=rate, unit="settlements/s",
            baseline_name="msgspec decode+encode", baseline_value=base_rate,
            target=f">= {TARGET:,.0f} settlements/s", met=rate >= TARGET, notes=notes),
        Row(name="replay without freezing the stored history (MemoryStore())", value=settlements / plain_s,
            unit="settlements/s", baseline_name="msgspec decode+encode", baseline_value=base_rate,
            notes={"settlement_seconds": round(plain_s, 3), "why": "the cyclic GC rescans every stored commit"}),
    ]
