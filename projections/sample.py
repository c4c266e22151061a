"""Synthetic inbound traffic, deterministic by seed: the read side's tests and benchmarks need
realistic commits (statuses, caps, cancels, adjustments, dead letters) without hand-written files.

`traffic(persons, seed)` yields inbound messages as bytes in a valid order; run them through the
one decision path (`replay_handler`) to get the commits the ledger would store.
"""
from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from decimal import Decimal

from events.messages import CHRONIC_SPECIAL, EMPLOYEES, INPATIENT, RESIDENTS

AREAS = {  # admdvs → statuses worth granting there
    "141002": ["tekun", "dibao", "returned_poverty", "low_income_applicant", "at_risk", "severe_disability"],
    "630102": ["tekun", "dibao", "low_income", "expenditure_poverty", "severe_disability", "key_entitled"],
}
HOSPITALS = [
    {"fixmedins_code": "H141001", "admdvs": "141002", "designated": True, "in_province": True, "ooc_class": "I",
     "serious_disease_designated": True},
    {"fixmedins_code": "H141002", "admdvs": "141002", "designated": True, "in_province": True,
     "ooc_class": "II_county_III", "serious_disease_designated": False},
    {"fixmedins_code": "H630001", "admdvs": "630102", "designated": True, "in_province": True, "ooc_class": None,
     "serious_disease_designated": False},
    {"fixmedins_code": "H630002", "admdvs": "630102", "designated": False, "in_province": True, "ooc_class": None,
     "serious_disease_designated": False},
]
DISEASES = ["C34.901", "N18.500", "I63.900", "J18.900", "E11.900"]


def _dump(obj: dict) -> bytes:
    return json.dumps(obj, ensure_ascii=False, default=str).encode()


def _money(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low * 100, high * 100)) / 100


def medins_messages() -> list[bytes]:
    return [_dump({"msg_type": "medins", "fixmedins_name": h["fixmedins_code"], **h}) for h in HOSPITALS]


def person_messages(psn_no: str, rng: random.Random, year: int = 2022) -> list[bytes]:
    """One person's year: maybe a status, an enrolment, settlements, maybe a cancel and a grant."""
    admdvs = rng.choice(list(AREAS))
    hospitals = [h for h in HOSPITALS if h["admdvs"] == admdvs]
    out: list[bytes] = []
    if rng.random() < 0.7:
        out.append(_dump({"msg_type": "psn_identity", "psn_no": psn_no, "admdvs": admdvs,
                          "status": rng.choice(AREAS[admdvs]), "action": "grant", "begndate": f"{year - 1}-06-01",
                          "source_dept": "民政", "doc_no": f"D-{psn_no}"}))
    insutype = RESIDENTS if rng.random() < 0.9 else EMPLOYEES
    out.append(_dump({"msg_type": "enrolment", "psn_no": psn_no, "admdvs": admdvs,
                      "brdy": f"{rng.randint(1940, 2015)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                      "year": year, "insutype": insutype, "contribution_std": "350" if admdvs[:2] == "63" else "320",
                      "enrol_date": f"{year}-01-0{rng.randint(1, 9)}", "in_normal_period": True}))
    setl_ids = []
    for n in range(rng.randint(1, 4)):
        inpatient = rng.random() < 0.7
        hospital = rng.choice(hospitals)
        medfee = _money(rng, 800, 90000 if inpatient else 6000)
        ful = (medfee * Decimal(rng.randint(0, 25)) / 100).quantize(Decimal("0.01"))
        inscp = (medfee - ful) * Decimal(rng.randint(80, 100)) / 100
        inscp = inscp.quantize(Decimal("0.01"))
        hifp = (inscp * Decimal(rng.randint(40, 75)) / 100).quantize(Decimal("0.01"))
        month = 1 + n * 3 + rng.randint(0, 2)
        day = dt.date(year, month, rng.randint(1, 20))
        end = day + dt.timedelta(days=rng.randint(2, 8) if inpatient else 0)
        setl_id = f"S-{psn_no}-{n}"
        setl_ids.append(setl_id)
        out.append(_dump({
            "msg_type": "settlement", "setl_id": setl_id, "mdtrt_id": f"M-{psn_no}-{n}", "psn_no": psn_no,
            "admdvs": admdvs, "insutype": insutype, "med_type": INPATIENT if inpatient else CHRONIC_SPECIAL,
            "chronic_mgmt": None if inpatient else rng.choice(["inpatient_managed", "quota"]), "special_drug": False,
            "fixmedins_code": hospital["fixmedins_code"], "begndate": day.isoformat(), "enddate": end.isoformat(),
            "setl_time": f"{end.isoformat()}T10:00:00+08:00", "dise_codg": rng.choice(DISEASES),
            "medfee_sumamt": str(medfee), "fulamt_ownpay_amt": str(ful), "inscp_scp_amt": str(inscp),
            "hifp_pay": str(hifp), "oth_pay": "0"}))
    if len(setl_ids) > 1 and rng.random() < 0.15:
        out.append(_dump({"msg_type": "settlement_cancel", "setl_id": setl_ids[0], "psn_no": psn_no,
                          "cancel_time": f"{year}-11-20T09:00:00+08:00"}))
    if admdvs.startswith("63") and rng.random() < 0.2:    # 支出型贫困 recognised late: retroactive assistance
        out.append(_dump({"msg_type": "psn_identity", "psn_no": psn_no, "admdvs": admdvs,
                          "status": "expenditure_poverty", "action": "grant", "begndate": f"{year}-12-15",
                          "source_dept": "民政", "doc_no": f"E-{psn_no}"}))
    if admdvs.startswith("1410") and rng.random() < 0.15:   # 低保 recognised late: stays re-decided (§12)
        out.append(_dump({"msg_type": "psn_identity", "psn_no": psn_no, "admdvs": admdvs, "status": "dibao",
                          "action": "grant", "begndate": f"{year}-05-01", "source_dept": "民政",
                          "doc_no": f"L-{psn_no}"}))
    if rng.random() < 0.1:
        out.append(_dump({"msg_type": "tilted_grant", "grant_id": f"G-{psn_no}", "psn_no": psn_no, "admdvs": admdvs,
                          "year": year, "amount": str(_money(rng, 500, 8000)), "approval_no": f"A-{psn_no}",
                          "approved_on": f"{year}-12-01"}))
    return out


def traffic(persons: int, seed: int = 7, prefix: str = "P", bad_every: int = 50) -> Iterator[bytes]:
    """Hospitals, then each person's messages; every `bad_every`-th person also sends a message to reject."""
    rng = random.Random(seed)
    yield from medins_messages()
    for i in range(persons):
        psn_no = f"{prefix}{i:07d}"
        yield from person_messages(psn_no, rng)
        if bad_every and i % bad_every == 0:
            yield _dump({"msg_type": "settlement", "setl_id": f"BAD-{psn_no}", "psn_no": psn_no})
    if persons:
        yield _dump({"msg_type": "year_close", "admdvs": "141000", "year": 2022})   # quota visits paid once


_REF_KIND = {"medins_recorded": "medins", "year_closed": "year_close", "message_rejected": "rejected",
             "pack_activated": "pack"}


def subject_of(psn_no: str | None, commit, secret: bytes) -> str:
    """Where the ledger stores a commit: the person's keyed subject, or `ledger.ref.<kind>`."""
    from events.ledger import event_type
    from services.runtime.secrets import person_key
    if psn_no is not None:
        return f"ledger.person.{person_key(secret, psn_no)}"
    return f"ledger.ref.{_REF_KIND.get(event_type(commit.events[0]), 'other')}"


def stored_commit(psn_no: str | None, commit, secret: bytes, seal_key: bytes) -> tuple[str, bytes]:
    """(subject, bytes) as the ledger would publish the commit there: sealed for that subject."""
    from events.chain import encode_sealed
    subject = subject_of(psn_no, commit, secret)
    return subject, encode_sealed(seal_key, subject, commit)


async def decided(messages, packs=None):
    """Run `messages` through the one decision path with an in-memory store; returns the store."""
    from services.cli.replay import replay_handler
    from services.policy.pack import PackSet
    handler = replay_handler(packs or PackSet.from_dir())
    for raw in messages:
        await handler.handle(raw, source="sample")
    return handler.store
