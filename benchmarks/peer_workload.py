"""The workload of shared/bench/peer-workload.md, one list of messages for the ledger and for the peer.

Drawn from ``random.Random(seed)`` (seed 1) in this order, so both systems and
every run get the same messages:

1. per unique settlement ``i`` (0 .. settlements-1): its person
   ``rng.randrange(persons)``, then its amount ``U(100, 5000)`` yuan
   (``rng.uniform``) as an exact ``Decimal`` rounded half-up to 0.01;
2. the settlements re-sent: ``rng.sample`` of ``duplicates`` originals;
3. per original, in order: its distance ``rng.randint(1, 1000)`` in messages
   after the original. A duplicate takes output slot original + distance; when
   another already took that slot it takes the nearest free one before it
   (then after it), so every distance stays within 1 .. 1000.

The amount is the stay's in-scope cost paid by nobody yet: for the ledger a
Linfen inpatient settlement with ``inscp_scp_amt = medfee_sumamt = amount``
and ``hifp_pay = 0``, so the rule of the workload (70% of the amount) and the
ledger's Linfen 低保 line (70% of what is left after 大病) act on the same base.
`model_caps` is the workload's rule in memory, the yardstick of the end checks.
"""
from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from events.money import ZERO, money

YEAR = 2022
AREA = "141002"                    # 临汾 尧都区
HOSPITAL = "LF001"
STATUS = "dibao"
CAP = Decimal("60000")             # 低保 yearly assistance cap (Linfen 二(四)1)
ASSISTANCE_RATIO = Decimal("0.70")
CRITICAL_ILLNESS_PLACEHOLDER = Decimal("0.10")   # the peer's stand-in for a 大病 payment
MAX_GAP = 1000


@dataclass(frozen=True, slots=True)
class Settlement:
    setl_id: str
    psn_no: str
    amount: Decimal
    day: dt.date


@dataclass(frozen=True)
class Workload:
    persons: list[str]
    messages: list[Settlement]     # in the order both systems take them, re-sends included
    warmup: int                    # the first `warmup` messages are left out of the figures

    @property
    def unique(self) -> int:
        return len({m.setl_id for m in self.messages})


def person_no(n: int) -> str:
    return f"P{n:05d}"


def generate(persons: int = 10_000, settlements: int = 100_000, duplicates: int = 1_000,
             warmup: int = 1_000, seed: int = 1) -> Workload:
    rng = random.Random(seed)
    first = dt.date(YEAR, 1, 1)
    unique = []
    for i in range(settlements):
        psn = person_no(rng.randrange(persons))
        amount = money(Decimal(rng.uniform(100, 5000)))
        unique.append(Settlement(f"S{i:06d}", psn, amount, first + dt.timedelta(days=i * 365 // settlements)))
    originals = sorted(rng.sample(range(settlements), duplicates))
    gaps = {i: rng.randint(1, MAX_GAP) for i in originals}
    out: list[Settlement] = []
    reserved: dict[int, Settlement] = {}          # output slot → the re-send that goes there
    for i, settlement in enumerate(unique):
        while len(out) in reserved:
            out.append(reserved.pop(len(out)))
        position = len(out)
        out.append(settlement)
        if i in gaps:
            reserved[_free_slot(reserved, position, gaps[i])] = settlement
    out.extend(reserved[slot] for slot in sorted(reserved))   # past the last unique: still 1..1000 after
    return Workload([person_no(n) for n in range(persons)], out, warmup)


def _free_slot(reserved: dict[int, Settlement], position: int, gap: int) -> int:
    for slot in (*range(position + gap, position, -1), *range(position + gap + 1, position + MAX_GAP + 1)):
        if slot not in reserved:
            return slot
    raise ValueError("more re-sends than slots within 1000 messages")


def model_caps(messages: Iterable[Settlement]) -> dict[str, Decimal]:
    """Cap used per person under the workload's rule: min(round(0.70 × amount, 2), 60000 − used), once a setl_id."""
    used: dict[str, Decimal] = {}
    seen: set[str] = set()
    for m in messages:
        if m.setl_id in seen:
            continue
        seen.add(m.setl_id)
        before = used.get(m.psn_no, ZERO)
        used[m.psn_no] = before + min(money(ASSISTANCE_RATIO * m.amount), CAP - before)
    return used


def _line(message: dict) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def setup_lines(workload: Workload) -> list[bytes]:
    """The hospital, then per person the 低保 recognition and the enrolment: the ledger's reference data."""
    lines = [_line({"msg_type": "medins", "fixmedins_code": HOSPITAL, "fixmedins_name": "临汾市 benchmark hospital",
                    "admdvs": AREA, "designated": True, "in_province": True, "ooc_class": "I",
                    "serious_disease_designated": False})]
    for psn in workload.persons:
        lines.append(_line({"msg_type": "psn_identity", "psn_no": psn, "admdvs": AREA, "status": STATUS,
                            "action": "grant", "begndate": f"{YEAR - 1}-06-01", "enddate": None,
                            "source_dept": "民政", "doc_no": f"D-{psn}"}))
        lines.append(_line({"msg_type": "enrolment", "psn_no": psn, "admdvs": AREA, "brdy": "1970-01-01",
                            "year": YEAR, "insutype": "390", "contribution_std": "320",
                            "enrol_date": f"{YEAR}-01-05", "in_normal_period": True}))
    return lines


def settlement_line(m: Settlement) -> bytes:
    """A Linfen inpatient stay whose whole cost is in scope and unpaid by basic insurance (see the module doc)."""
    amount = str(m.amount)
    n = m.setl_id[1:]
    return _line({"msg_type": "settlement", "setl_id": m.setl_id, "mdtrt_id": f"M{n}", "psn_no": m.psn_no,
                  "admdvs": AREA, "insutype": "390", "med_type": "21", "chronic_mgmt": None, "special_drug": False,
                  "fixmedins_code": HOSPITAL, "begndate": str(max(m.day - dt.timedelta(days=3), dt.date(YEAR, 1, 1))), "enddate": str(m.day),
                  "setl_time": f"{m.day}T10:00:00+08:00", "dise_codg": "K35.9", "medfee_sumamt": amount,
                  "fulamt_ownpay_amt": "0.00", "inscp_scp_amt": amount, "hifp_pay": "0.00", "oth_pay": "0.00"})
