"""The event catalogue: immutable facts the ledger stores on JetStream (design.md §2).

The person's events and the one tagged union of every event (`Event`) around one envelope
(`events/envelope.py`); reference and integrity events are in `events/reference_events.py`;
the one decoder is `events/upcast.py`. Evolution is additive: a new field gets a default; a
change of meaning or shape is a new event type (a new tag), its old tag read through an upcaster
(ADR 0017). Every payment event carries the
inputs and cumulative figures it used so a supervisor can redo it by hand
(policy.md §8.5).
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

import msgspec

from events.envelope import LedgerEvent
from events.reference_events import (KeyClaimed, LossAccepted, MedinsRecorded, MessageRejected, PackActivated,
                                     SequenceNotRestored, StreamRestored, YearClosed)
from events.messages import Settlement
from events.results import Result
# The reference and integrity events are importable from here too (`ev.MedinsRecorded`), as before.


Counter = Literal["shared", "own", "none"]


# --- person status and enrolment -------------------------------------------------

class StatusGranted(LedgerEvent, tag="status_granted"):
    psn_no: str
    admdvs: str
    status: str
    begndate: dt.date
    enddate: dt.date | None
    source_dept: str
    doc_no: str


class StatusRevoked(LedgerEvent, tag="status_revoked"):
    psn_no: str
    admdvs: str
    status: str
    begndate: dt.date
    source_dept: str
    doc_no: str


class EnrolmentRecorded(LedgerEvent, tag="enrolment_recorded"):
    psn_no: str
    admdvs: str
    year: int
    insutype: str
    brdy: dt.date
    contribution_std: Decimal
    enrol_date: dt.date
    in_normal_period: bool


class PremiumSubsidyGranted(LedgerEvent, tag="premium_subsidy_granted"):
    psn_no: str
    year: int
    status: str | None
    contribution_std: Decimal
    subsidy: Decimal
    fund: str | None
    rule_id: str | None
    clause: str | None
    reason: str


# --- settlements and their payment lines -------------------------------------------

class Hospital(msgspec.Struct, frozen=True, kw_only=True):
    """The settlement's hospital as the ledger knew it (its last `MedinsRecorded`) when deciding, kept in
    the facts so a re-decision sees what the first decision saw, whatever was recorded since."""
    designated: bool
    in_province: bool
    ooc_class: str | None = None
    serious_disease_designated: bool = False

    @classmethod
    def recorded(cls, e: MedinsRecorded) -> Hospital:
        return cls(designated=e.designated, in_province=e.in_province, ooc_class=e.ooc_class,
                   serious_disease_designated=e.serious_disease_designated)


class SettlementFacts(LedgerEvent, kw_only=True):
    """What the platform settled (`settlement`, exactly as sent), the hospital as the ledger knew it, what
    the ledger decided, and the counters it moved.

    `setl_id`, `psn_no` and `year` (the policy year decided, not a field of the settlement) are the keys
    every settlement event carries at its top, so readers key them without knowing the type (ADR 0017).
    Replaces the flat shape of tags `hospital_stay_settled` / `outpatient_visit_settled`, which
    `events/upcast.py` reads as this one.
    """
    setl_id: str
    psn_no: str
    year: int
    settlement: Settlement
    hospital: Hospital
    status: str | None
    oop: Decimal
    remaining: Decimal
    ci_base_before: Decimal
    ci_base_added: Decimal
    assist_base_before: Decimal
    assist_base_added: Decimal
    quota_base: Decimal
    hifmi_pay: Decimal
    maf_pay: Decimal
    hosp_part_amt: Decimal
    psn_part_amt: Decimal
    # A quota-managed visit settled after its area's year_close: paid visit by visit (临汾 二(五) at
    # §6 ratios, within the cap) since no close will come again.
    after_year_close: bool = False
    # The 大病 deductible of the status applied (policy.md §4), so read models show the deductible the
    # decision used, not today's pack. Absent (in the flat shape's oldest events) means not recorded.
    ci_deductible: Decimal | None = None


class HospitalStaySettled(SettlementFacts, tag="hospital_stay_settled_v2"):
    pass


class OutpatientVisitSettled(SettlementFacts, tag="outpatient_visit_settled_v2"):
    pass


class CriticalIllnessPaid(LedgerEvent, tag="critical_illness_paid"):
    setl_id: str
    psn_no: str
    year: int
    rule_id: str
    clause: str
    base: Decimal                 # this settlement's oop
    cumulative_before: Decimal    # year's oop before it
    deductible: Decimal
    ratio: Decimal
    cap_limit: Decimal | None
    paid_before: Decimal
    amount: Decimal
    # When paid after the settlement (a status recognised late, policy.md §12): why, and what 大病 had
    # already paid this settlement; `amount` is then what the formula gives less `already_paid`.
    adjustment: str | None = None
    already_paid: Decimal | None = None


class AssistancePaid(LedgerEvent, tag="assistance_paid"):
    setl_id: str
    psn_no: str
    year: int
    rule_id: str
    clause: str
    base: Decimal
    ratio: Decimal | None
    threshold: Decimal | None
    cumulative_before: Decimal | None
    formula_amount: Decimal       # what the rule gives before caps and what is owed
    counter: Counter
    cap_limit: Decimal | None
    cap_used_before: Decimal | None
    amount: Decimal
    adjustment: str | None = None  # why, when paid after the settlement (retroactive, year end)


class HospitalBorne(LedgerEvent, tag="hospital_borne"):
    setl_id: str
    psn_no: str
    year: int
    rule_id: str
    clause: str
    base: Decimal
    ratio: Decimal | None
    amount: Decimal


class SettlementRedecided(LedgerEvent, tag="settlement_redecided"):
    """A decided settlement decided again because a status was recognised late (policy.md §12).

    Leads the adjustment lines it causes. The lower 大病 base left (`remaining`) moves the person's
    cumulative assistance base, so later thresholds read what the stay really left to pay.
    """
    setl_id: str
    psn_no: str
    year: int
    status: str | None             # the status the re-decision applied
    reason: str
    remaining_delta: Decimal       # change of the stay's `remaining` (−extra 大病)
    assist_base_delta: Decimal     # change of its contribution to the assistance base (designated stays)
    quota_base: Decimal | None = None   # a quota visit's new year-end base, when it changed


class SettlementCancelled(LedgerEvent, tag="settlement_cancelled"):
    setl_id: str
    psn_no: str
    year: int
    cancel_time: dt.datetime


class PaymentReversed(LedgerEvent, tag="payment_reversed"):
    """Compensates one earlier payment line; nothing is edited or deleted (policy.md §8.4)."""
    setl_id: str
    psn_no: str
    year: int
    fund: str
    rule_id: str
    clause: str
    counter: Counter
    amount: Decimal


class TiltedGrantPaid(LedgerEvent, tag="tilted_grant_paid"):
    grant_id: str
    psn_no: str
    admdvs: str
    year: int
    approval_no: str
    approved_on: dt.date
    requested: Decimal
    granted: Decimal
    refused: Decimal
    cap_limit: Decimal
    cap_used_before: Decimal
    clause: str


class WarningRaised(LedgerEvent, tag="warning_raised"):
    psn_no: str
    year: int
    code: str
    clause: str
    figure: Decimal
    threshold: Decimal
    setl_id: str | None = None


class QuotaYearSettled(LedgerEvent, tag="quota_year_settled"):
    """Marks a person-year's quota-managed chronic outpatient as paid at year end."""
    psn_no: str
    admdvs: str
    year: int


Event = (StatusGranted | StatusRevoked | EnrolmentRecorded | PremiumSubsidyGranted
         | HospitalStaySettled | OutpatientVisitSettled | CriticalIllnessPaid | AssistancePaid
         | HospitalBorne | SettlementRedecided | SettlementCancelled | PaymentReversed | TiltedGrantPaid
         | WarningRaised | QuotaYearSettled | KeyClaimed | MedinsRecorded | YearClosed | PackActivated
         | MessageRejected | SequenceNotRestored | StreamRestored | LossAccepted)


class Commit(msgspec.Struct, frozen=True):
    """One decision = one stream message: its events land together or not at all (ADR 0001)."""
    commit_id: str
    correlation_id: str
    events: list[Event]
    results: list[Result] = []
    # HMAC under the ledger's seal key (events/chain.py `commit_seal`): the ledger wrote this commit.
    # Added later; a commit without one was not sealed by the ledger (ADR 0010).
    seal: str = ""


COMMIT_ENCODER = msgspec.json.Encoder()


def event_type(event: LedgerEvent) -> str:
    return event.__struct_config__.tag  # type: ignore[return-value]
