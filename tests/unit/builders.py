"""Message factories for the unit tests: inbound messages (integration.md §1) as dicts.

Each builder returns a plain dict with sane defaults so a test names only the
figures it is about; `raw()` turns one into the JSON bytes the platform sends.
Money is given as strings (integration.md: "a JSON number or decimal string").
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

LINFEN = "141002"            # 临汾市尧都区: pack linfen-2022 (prefix 1410)
QINGHAI = "630102"           # 西宁市城东区: pack qinghai-2022 (prefix 63)

# Hospitals every test may record; the code says what the hospital is.
LF_HOSPITAL = "LF-I"         # Linfen, designated, in province, out-of-catalogue class I (30%), serious-disease hospital
QH_HOSPITAL = "QH-1"         # Qinghai, designated, in province


Money = str | int | Decimal


def _m(value: Money) -> str:
    return str(value)


def medins(code: str = LF_HOSPITAL, *, admdvs: str = LINFEN, designated: bool = True, in_province: bool = True,
           ooc_class: str | None = "I", serious: bool = True, name: str | None = None) -> dict:
    return {"msg_type": "medins", "fixmedins_code": code, "fixmedins_name": name or f"医院 {code}",
            "admdvs": admdvs, "designated": designated, "in_province": in_province, "ooc_class": ooc_class,
            "serious_disease_designated": serious}


def qinghai_medins(code: str = QH_HOSPITAL, **kw) -> dict:
    kw.setdefault("admdvs", QINGHAI)
    kw.setdefault("ooc_class", None)
    kw.setdefault("serious", False)
    return medins(code, **kw)


def identity(psn_no: str, status: str, *, admdvs: str = LINFEN, begndate: str = "2021-06-01",
             enddate: str | None = None, action: str = "grant", doc_no: str | None = None,
             source_dept: str = "民政") -> dict:
    msg = {"msg_type": "psn_identity", "psn_no": psn_no, "admdvs": admdvs, "status": status, "action": action,
           "begndate": begndate, "source_dept": source_dept, "doc_no": doc_no or f"DOC-{status}-{begndate}"}
    if enddate is not None:
        msg["enddate"] = enddate
    return msg


def enrolment(psn_no: str, *, admdvs: str = LINFEN, year: int = 2022, insutype: str = "390",
              std: Money | None = None, brdy: str = "1970-05-01", enrol_date: str | None = None,
              in_normal_period: bool = True) -> dict:
    if std is None:
        std = "320" if admdvs.startswith("1410") else "350"     # policy.md §10 defaults for 2022
    return {"msg_type": "enrolment", "psn_no": psn_no, "admdvs": admdvs, "brdy": brdy, "year": year,
            "insutype": insutype, "contribution_std": _m(std), "enrol_date": enrol_date or f"{year}-01-05",
            "in_normal_period": in_normal_period}


def stay(setl_id: str, psn_no: str, *, total: Money, in_scope: Money, hifp: Money, ooc: Money = "0",
         oth: Money = "0", admdvs: str = LINFEN, hospital: str | None = None, enddate: str = "2022-03-10",
         begndate: str | None = None, dise: str = "K35.9", insutype: str = "390") -> dict:
    """An inpatient settlement (med_type 21)."""
    end = dt.date.fromisoformat(enddate)
    return {"msg_type": "settlement", "setl_id": setl_id, "mdtrt_id": f"M-{setl_id}", "psn_no": psn_no,
            "admdvs": admdvs, "insutype": insutype, "med_type": "21",
            "fixmedins_code": hospital or (LF_HOSPITAL if admdvs.startswith("1410") else QH_HOSPITAL),
            "begndate": begndate or str(end - dt.timedelta(days=5)), "enddate": enddate,
            "setl_time": f"{enddate}T10:00:00+08:00", "dise_codg": dise, "medfee_sumamt": _m(total),
            "fulamt_ownpay_amt": _m(ooc), "inscp_scp_amt": _m(in_scope), "hifp_pay": _m(hifp), "oth_pay": _m(oth)}


def visit(setl_id: str, psn_no: str, *, total: Money, in_scope: Money, hifp: Money, ooc: Money = "0",
          oth: Money = "0", chronic_mgmt: str | None = "inpatient_managed", special_drug: bool = False, date: str = "2022-04-01",
          admdvs: str = LINFEN, hospital: str | None = None, med_type: str = "14", dise: str = "I10",
          insutype: str = "390") -> dict:
    """A chronic/special-disease outpatient visit (med_type 14) on one day."""
    msg = stay(setl_id, psn_no, total=total, in_scope=in_scope, hifp=hifp, ooc=ooc, oth=oth, admdvs=admdvs,
               hospital=hospital, enddate=date, begndate=date, dise=dise, insutype=insutype)
    msg.update(med_type=med_type, chronic_mgmt=chronic_mgmt, special_drug=special_drug)
    return msg


def cancel(setl_id: str, psn_no: str, *, cancel_time: str = "2022-12-01T10:00:00+08:00") -> dict:
    return {"msg_type": "settlement_cancel", "setl_id": setl_id, "psn_no": psn_no, "cancel_time": cancel_time}


def year_close(admdvs: str = "141000", year: int = 2022) -> dict:
    return {"msg_type": "year_close", "admdvs": admdvs, "year": year}


def grant(grant_id: str, psn_no: str, amount: Money, *, admdvs: str = QINGHAI, year: int = 2022,
          approved_on: str = "2022-09-01", approval_no: str | None = None) -> dict:
    return {"msg_type": "tilted_grant", "grant_id": grant_id, "psn_no": psn_no, "admdvs": admdvs, "year": year,
            "amount": _m(amount), "approval_no": approval_no or f"APR-{grant_id}", "approved_on": approved_on}


def raw(message: dict) -> bytes:
    """The JSON bytes of one message, as one line of a replay file."""
    return json.dumps(message, ensure_ascii=False).encode()
