"""Outbound results of integration.md §2: one per inbound message, same key."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

import msgspec

Fund = Literal["critical_illness", "assistance", "hospital"]


class Reason(msgspec.Struct, frozen=True):
    code: str
    message: str


class Line(msgspec.Struct, frozen=True):
    """One payment of one fund under one rule: enough to recompute it by hand."""
    fund: Fund
    rule_id: str
    clause: str
    base: Decimal
    ratio: Decimal | None
    amount: Decimal


class Cap(msgspec.Struct, frozen=True):
    limit: Decimal
    used: Decimal
    remaining: Decimal


class Outbound(msgspec.Struct, frozen=True, tag_field="msg_type"):
    """Base of every result."""


class SettlementResult(Outbound, tag="settlement_result"):
    setl_id: str | None
    psn_no: str | None
    result: Literal["settled", "duplicate", "rejected"]
    year: int | None = None
    pack: str | None = None
    status: str | None = None
    reason: Reason | None = None
    medfee_sumamt: Decimal | None = None
    hifp_pay: Decimal | None = None
    oth_pay: Decimal | None = None
    hifmi_pay: Decimal | None = None
    maf_pay: Decimal | None = None
    hosp_part_amt: Decimal | None = None
    psn_part_amt: Decimal | None = None
    lines: list[Line] = []
    cap: Cap | None = None
    warnings: list[str] = []
    # integration.md §2: a duplicate of a settlement cancelled since says so.
    cancelled: bool = False
    cancel_time: dt.datetime | None = None


class SettlementAdjustment(Outbound, tag="settlement_adjustment"):
    """What a settlement is paid after its decision: a status recognised late (policy.md §12), year end."""
    setl_id: str
    psn_no: str
    year: int
    pack: str
    reason: str
    maf_pay: Decimal
    lines: list[Line] = []
    cap: Cap | None = None
    hifmi_pay: Decimal = Decimal("0.00")


class SubsidyResult(Outbound, tag="subsidy_result"):
    psn_no: str | None
    year: int | None
    result: Literal["settled", "duplicate", "rejected"]
    pack: str | None = None
    status: str | None = None
    subsidy: Decimal | None = None
    fund: str | None = None
    rule_id: str | None = None
    clause: str | None = None
    reason: Reason | None = None


class CancelResult(Outbound, tag="cancel_result"):
    setl_id: str | None
    psn_no: str | None
    result: Literal["reversed", "duplicate", "rejected"]
    year: int | None = None
    hifmi_pay: Decimal | None = None
    maf_pay: Decimal | None = None
    hosp_part_amt: Decimal | None = None
    cap: Cap | None = None
    reason: Reason | None = None


class IdentityResult(Outbound, tag="identity_result"):
    psn_no: str | None
    status: str | None
    action: str | None
    result: Literal["recorded", "duplicate", "rejected"]
    pack: str | None = None
    adjustments: list[SettlementAdjustment] = []   # integration.md §2 "Results that cause adjustments"
    reason: Reason | None = None


class GrantResult(Outbound, tag="grant_result"):
    grant_id: str | None
    psn_no: str | None
    result: Literal["settled", "duplicate", "rejected"]
    year: int | None = None
    pack: str | None = None
    requested: Decimal | None = None
    granted: Decimal | None = None
    refused: Decimal | None = None
    cap: Cap | None = None
    reason: Reason | None = None


class MedinsResult(Outbound, tag="medins_result"):
    fixmedins_code: str | None
    result: Literal["recorded", "rejected"]
    reason: Reason | None = None


class YearCloseResult(Outbound, tag="year_close_result"):
    admdvs: str | None
    year: int | None
    result: Literal["closed", "duplicate", "rejected"]
    adjustments: list[SettlementAdjustment] = []
    reason: Reason | None = None


class Rejected(Outbound, tag="rejected"):
    """For input that is not even a known message: bad JSON or unknown msg_type."""
    result: Literal["rejected"]
    reason: Reason
    received_msg_type: str | None = None


Result = (SettlementResult | SettlementAdjustment | SubsidyResult | CancelResult | IdentityResult
          | GrantResult | MedinsResult | YearCloseResult | Rejected)

RESULT_DECODER = msgspec.json.Decoder(Result)
RESULT_ENCODER = msgspec.json.Encoder()

RESULT_TYPE_FOR = {
    "settlement": SettlementResult,
    "settlement_cancel": CancelResult,
    "enrolment": SubsidyResult,
    "psn_identity": IdentityResult,
    "tilted_grant": GrantResult,
    "medins": MedinsResult,
    "year_close": YearCloseResult,
}


def result_tag(result: Outbound) -> str:
    return result.__struct_config__.tag  # type: ignore[return-value]


def encode_result(result: Outbound) -> bytes:
    return RESULT_ENCODER.encode(result)


def as_duplicate(result: Outbound) -> Outbound:
    """The stored answer, re-stamped: same figures, result "duplicate"."""
    return msgspec.structs.replace(result, result="duplicate")  # type: ignore[arg-type]
