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

from events.limits import MAX_TEXT_CHARS

MedType = Literal["21", "14", "11"]          # inpatient / chronic-special outpatient / ordinary outpatient
InsuType = Literal["390", "310"]             # residents / employees
OocClass = Literal["I", "II_city", "II_county_III"]
ChronicMgmt = Literal["inpatient_managed", "quota"]
PolicyYear = Annotated[int, msgspec.Meta(ge=2000, le=2100)]   # a typo like 20222 is refused, not decided
# Codes, names and numbers of the platform are a few dozen characters. Bounding every text keeps what a decision
# echoes bounded too: a late status re-decides (and echoes the setl_id of) every stay it covers, all in one commit,
# which must fit NATS max_payload (ADR 0003 "Hostile input").
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)]

INPATIENT: MedType = "21"
CHRONIC_SPECIAL: MedType = "14"
RESIDENTS: InsuType = "390"                  # 城乡居民医保: 资助参保 and 大病 apply
EMPLOYEES: InsuType = "310"


class Inbound(msgspec.Struct, frozen=True, tag_field="msg_type"):
    """Base of every message the platform or a department sends."""


class Medins(Inbound, tag="medins"):
    fixmedins_code: Text
    fixmedins_name: Text
    admdvs: Text
    designated: bool
    in_province: bool
    ooc_class: OocClass | None = None
    serious_disease_designated: bool = False


class PsnIdentity(Inbound, tag="psn_identity"):
    psn_no: Text
    admdvs: Text
    status: Text
    action: Literal["grant", "revoke"]
    begndate: dt.date
    source_dept: Text
    doc_no: Text
    enddate: dt.date | None = None


class Enrolment(Inbound, tag="enrolment"):
    psn_no: Text
    admdvs: Text
    brdy: dt.date
    year: PolicyYear
    insutype: InsuType
    contribution_std: Decimal
    enrol_date: dt.date
    in_normal_period: bool


class Settlement(Inbound, tag="settlement"):
    setl_id: Text
    mdtrt_id: Text
    psn_no: Text
    admdvs: Text
    insutype: InsuType
    med_type: MedType
    fixmedins_code: Text
    begndate: dt.date
    enddate: dt.date
    setl_time: dt.datetime
    dise_codg: Text
    medfee_sumamt: Decimal
    fulamt_ownpay_amt: Decimal
    inscp_scp_amt: Decimal
    hifp_pay: Decimal
    oth_pay: Decimal = Decimal("0")
    chronic_mgmt: ChronicMgmt | None = None
    special_drug: bool = False


class SettlementCancel(Inbound, tag="settlement_cancel"):
    setl_id: Text
    psn_no: Text
    cancel_time: dt.datetime


class YearClose(Inbound, tag="year_close"):
    admdvs: Text
    year: PolicyYear


class TiltedGrant(Inbound, tag="tilted_grant"):
    grant_id: Text
    psn_no: Text
    admdvs: Text
    year: PolicyYear
    amount: Decimal
    approval_no: Text
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
