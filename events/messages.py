"""Inbound messages of integration.md §1, tagged by `msg_type`.

Field names are the platform's (pinyin abbreviations) so an adapter on the
platform side is a rename at most. Unknown fields are ignored; schema changes
are additive (new fields get defaults), a breaking change is a new msg_type.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

MedType = Literal["21", "14", "11"]          # inpatient / chronic-special outpatient / ordinary outpatient
InsuType = Literal["390", "310"]             # residents / employees
OocClass = Literal["I", "II_city", "II_county_III"]
ChronicMgmt = Literal["inpatient_managed", "quota"]
PolicyYear = Annotated[int, msgspec.Meta(ge=2000, le=2100)]   # a typo like 20222 is refused, not decided

INPATIENT: MedType = "21"
CHRONIC_SPECIAL: MedType = "14"
RESIDENTS: InsuType = "390"                  # 城乡居民医保: 资助参保 and 大病 apply
EMPLOYEES: InsuType = "310"


class Inbound(msgspec.Struct, frozen=True, tag_field="msg_type"):
    """Base of every message the platform or a department sends."""


class Medins(Inbound, tag="medins"):
    fixmedins_code: str
    fixmedins_name: str
    admdvs: str
    designated: bool
    in_province: bool
    ooc_class: OocClass | None = None
    serious_disease_designated: bool = False


class PsnIdentity(Inbound, tag="psn_identity"):
    psn_no: str
    admdvs: str
    status: str
    action: Literal["grant", "revoke"]
    begndate: dt.date
    source_dept: str
    doc_no: str
    enddate: dt.date | None = None


class Enrolment(Inbound, tag="enrolment"):
    psn_no: str
    admdvs: str
    brdy: dt.date
    year: PolicyYear
    insutype: InsuType
    contribution_std: Decimal
    enrol_date: dt.date
    in_normal_period: bool


class Settlement(Inbound, tag="settlement"):
    setl_id: str
    mdtrt_id: str
    psn_no: str
    admdvs: str
    insutype: InsuType
    med_type: MedType
    fixmedins_code: str
    begndate: dt.date
    enddate: dt.date
    setl_time: dt.datetime
    dise_codg: str
    medfee_sumamt: Decimal
    fulamt_ownpay_amt: Decimal
    inscp_scp_amt: Decimal
    hifp_pay: Decimal
    oth_pay: Decimal = Decimal("0")
    chronic_mgmt: ChronicMgmt | None = None
    special_drug: bool = False


class SettlementCancel(Inbound, tag="settlement_cancel"):
    setl_id: str
    psn_no: str
    cancel_time: dt.datetime


class YearClose(Inbound, tag="year_close"):
    admdvs: str
    year: PolicyYear


class TiltedGrant(Inbound, tag="tilted_grant"):
    grant_id: str
    psn_no: str
    admdvs: str
    year: PolicyYear
    amount: Decimal
    approval_no: str
    approved_on: dt.date


InboundMessage = Medins | PsnIdentity | Enrolment | Settlement | SettlementCancel | YearClose | TiltedGrant

MSG_TYPES: dict[str, type[Inbound]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (Medins, PsnIdentity, Enrolment, Settlement, SettlementCancel, YearClose, TiltedGrant)
}

DECODER = msgspec.json.Decoder(InboundMessage)
ENCODER = msgspec.json.Encoder(decimal_format="number")


def encode_message(message: Inbound) -> bytes:
    """Canonical bytes of an inbound message (money as JSON numbers, as the platform sends)."""
    return ENCODER.encode(message)
