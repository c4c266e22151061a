"""Synthetic inbound messages (integration.md §1) for integration tests, benchmarks and demos.

Deterministic for a given seed, so a feed can be decided twice (offline
replay and through NATS) and compared line for line. Linfen 2022 figures:
area 141002, statuses from the linfen-2022 pack.
"""
from __future__ import annotations

import json
import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from events.money import money

AREA = "141002"
YEAR = 2022
HOSPITALS = ("H141002001", "H141002002", "H141002003")


def dumps(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def medins(code: str = HOSPITALS[0], *, ooc_class: str | None = "II_city", admdvs: str = AREA) -> dict[str, Any]:
    return {"msg_type": "medins", "fixmedins_code": code, "fixmedins_name": f"医院 {code}", "admdvs": admdvs,
            "designated": True, "in_province": True, "ooc_class": ooc_class, "serious_disease_designated": True}


def identity(psn_no: str, status: str = "dibao", *, begndate: str = "2022-01-01", admdvs: str = AREA,
             action: str = "grant", doc_no: str | None = None) -> dict[str, Any]:
    return {"msg_type": "psn_identity", "psn_no": psn_no, "admdvs": admdvs, "status": status, "action": action,
            "begndate": begndate, "enddate": None, "source_dept": "民政", "doc_no": doc_no or f"DOC-{psn_no}"}


def enrolment(psn_no: str, *, year: int = YEAR, admdvs: str = AREA, insutype: str = "390") -> dict[str, Any]:
    return {"msg_type": "enrolment", "psn_no": psn_no, "admdvs": admdvs, "brdy": "1960-05-01", "year": year,
            "insutype": insutype, "contribution_std": 320, "enrol_date": f"{year}-01-05", "in_normal_period": True}


def settlement(setl_id: str, psn_no: str, *, total: str | int = "20000.00", in_scope: str | int | None = None,
               ooc: str | int | Decimal = "1000.00", hifp: str | int | None = None, day: str = "2022-03-10",
               hospital: str = HOSPITALS[0], med_type: str = "21", admdvs: str = AREA,
               dise_codg: str = "J18.9", chronic_mgmt: str | None = None) -> dict[str, Any]:
    """Amounts as decimal strings; by default basic insurance paid 60% of the in-scope cost."""
    total_d, ooc_d = money(total), money(ooc)
    in_scope_d = money(in_scope) if in_scope is not None else total_d - ooc_d
    hifp_d = money(hifp) if hifp is not None else money(in_scope_d * Decimal("0.6"))
    return {"msg_type": "settlement", "setl_id": setl_id, "mdtrt_id": f"M-{setl_id}", "psn_no": psn_no,
            "admdvs": admdvs, "insutype": "390", "med_type": med_type, "chronic_mgmt": chronic_mgmt,
            "special_drug": False, "fixmedins_code": hospital, "begndate": day, "enddate": day,
            "setl_time": f"{day}T10:00:00+08:00", "dise_codg": dise_codg, "medfee_sumamt": str(total_d),
            "fulamt_ownpay_amt": str(ooc_d), "inscp_scp_amt": str(in_scope_d),
            "hifp_pay": str(hifp_d), "oth_pay": "0"}


def cancel(setl_id: str, psn_no: str) -> dict[str, Any]:
    return {"msg_type": "settlement_cancel", "setl_id": setl_id, "psn_no": psn_no,
            "cancel_time": "2022-12-01T09:00:00+08:00"}


def tilted_grant(grant_id: str, psn_no: str, amount: str = "5000.00") -> dict[str, Any]:
    return {"msg_type": "tilted_grant", "grant_id": grant_id, "psn_no": psn_no, "admdvs": AREA, "year": YEAR,
            "amount": amount, "approval_no": f"A-{grant_id}", "approved_on": "2022-11-01"}


def psn_no_of(i: int, prefix: str = "P") -> str:
    return f"{prefix}{i:018d}"


def setup_lines(persons: int, *, prefix: str = "P", statuses: tuple[str, ...] = ("dibao", "tekun", "at_risk",
                "returned_poverty")) -> Iterator[bytes]:
    """Hospitals, then each person's status and enrolment: what settlements need first."""
    for code in HOSPITALS:
        yield dumps(medins(code))
    for i in range(persons):
        psn = psn_no_of(i, prefix)
        yield dumps(identity(psn, statuses[i % len(statuses)]))
        yield dumps(enrolment(psn))


def settlement_lines(count: int, persons: int, *, prefix: str = "P", seed: int = 7,
                     id_prefix: str = "S") -> Iterator[bytes]:
    """`count` settlements spread round-robin over `persons` already enrolled persons."""
    rng = random.Random(seed)
    for n in range(count):
        psn = psn_no_of(n % persons, prefix)
        total = rng.randrange(2_000, 60_000)
        month = 1 + (n // persons) % 12
        ooc = money(Decimal(total) * rng.randrange(200, 2_000) / 10_000)     # 2%–20% out of catalogue
        yield dumps(settlement(f"{id_prefix}{n:09d}", psn, total=total, ooc=ooc,
                               day=f"2022-{month:02d}-{1 + n % 28:02d}", hospital=HOSPITALS[n % len(HOSPITALS)]))


def mixed_feed(persons: int = 20, settlements: int = 120, *, prefix: str = "F", seed: int = 11) -> list[bytes]:
    """A feed with every kind of line: reference data, identities, enrolments, settlements,
    duplicates, cancellations, grants, bad input and a year close."""
    rng = random.Random(seed)
    lines = list(setup_lines(persons, prefix=prefix))
    lines.append(dumps(settlement("F-early", psn_no_of(0, prefix))))       # fine: enrolled above
    lines.append(dumps(settlement("F-unknown-hosp", psn_no_of(1, prefix), hospital="H-nowhere")))
    lines.append(dumps(settlement("F-not-enrolled", "F-stranger")))
    lines.append(b'{"msg_type": "settlement", "setl_id": ')                 # bad JSON
    lines.append(dumps({"msg_type": "teleport", "psn_no": "x"}))            # unknown type
    lines.append(dumps({**settlement("F-neg", psn_no_of(2, prefix)), "hifp_pay": "-1"}))
    body = list(settlement_lines(settlements, persons, prefix=prefix, seed=seed, id_prefix="F"))
    lines.extend(body)
    for _ in range(10):                                                     # repeats of earlier keys
        lines.append(rng.choice(body))
    for k in range(0, min(settlements, 30), 7):
        lines.append(dumps(cancel(f"F{k:09d}", psn_no_of(k % persons, prefix))))
    lines.append(dumps(cancel("F-none", psn_no_of(3, prefix))))
    for k in range(5):
        lines.append(dumps(tilted_grant(f"G{k}", psn_no_of(k, prefix), amount=f"{rng.randrange(1000, 90000)}.00")))
    lines.append(dumps(tilted_grant("G0", psn_no_of(0, prefix))))             # duplicate grant
    lines.append(dumps(settlement("F-quota", psn_no_of(5, prefix), med_type="14", chronic_mgmt="quota",
                                  total="3000.00", ooc="100.00")))
    lines.append(dumps({"msg_type": "year_close", "admdvs": AREA, "year": YEAR}))
    lines.append(dumps({"msg_type": "year_close", "admdvs": AREA, "year": YEAR}))
    return lines
