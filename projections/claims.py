"""Read models of settlements: each settlement with every line, fund flows by area/fund/month, warnings.

Later events of a settlement (adjustments, the cancel and its reversals) do not
repeat its area or kind, so the fold keeps a small index of settlements it has
seen (`ClaimsState`); the runner fills it from the `settlement` table for
settlements projected in earlier batches.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from events import ledger as ev
from events.messages import INPATIENT
from projections.model import Insert, Message, Op, Table, Upsert

SETTLEMENT = Table("settlement", ("setl_id", "person_key"), (
    "setl_id", "person_key", "mdtrt_id", "admdvs", "year", "med_type", "inpatient", "insutype", "fixmedins_code",
    "begndate", "enddate", "setl_time", "dise_codg", "pack", "pack_version", "status", "medfee_sumamt",
    "fulamt_ownpay_amt", "inscp_scp_amt", "hifp_pay", "oth_pay", "oop", "remaining", "ci_base_added",
    "assist_base_added", "hifmi_pay", "maf_pay", "hosp_part_amt", "psn_part_amt", "maf_adjusted", "cancelled",
    "cancel_time", "seq", "event_id", "recorded_at", "hifmi_adjusted", "assist_base_delta", "redecided_status"),
    frozenset({"maf_adjusted", "hifmi_adjusted", "assist_base_delta"}))
LINE = Table("settlement_line", ("seq", "idx"), (
    "seq", "idx", "setl_id", "person_key", "kind", "fund", "rule_id", "clause", "base", "ratio", "threshold",
    "cumulative_before", "formula_amount", "counter", "cap_limit", "cap_used_before", "amount", "adjustment",
    "pack", "pack_version", "event_id", "recorded_at"))
FUND_FLOW = Table("fund_flow", ("admdvs", "fund", "month"), ("admdvs", "fund", "month", "amount", "lines"),
                  frozenset({"amount", "lines"}))
WARNING = Table("warning", ("seq", "idx"), (
    "seq", "idx", "person_key", "admdvs", "year", "code", "clause", "figure", "threshold", "setl_id", "event_id",
    "recorded_at"))


@dataclass(slots=True)
class SetlMeta:
    """What later events of a settlement need from its facts."""
    admdvs: str
    inpatient: bool
    ci_base_added: Decimal
    assist_base_added: Decimal
    medfee_sumamt: Decimal
    psn_part_amt: Decimal
    maf_adjusted: Decimal
    hifmi_adjusted: Decimal = Decimal(0)       # 大病 paid later (a status recognised late, policy.md §12)
    assist_base_delta: Decimal = Decimal(0)    # the stay's assistance base moved by a re-decision

    @property
    def owed(self) -> Decimal:
        """What the person still pays for the stay."""
        return self.psn_part_amt - self.maf_adjusted - self.hifmi_adjusted


@dataclass(slots=True)
class ClaimsState:
    settlements: dict[tuple[str, str], SetlMeta] = field(default_factory=dict)   # (person_key, setl_id)

    def meta(self, person_key: str, setl_id: str) -> SetlMeta:
        found = self.settlements.get((person_key, setl_id))
        if found is None:
            raise LookupError(f"settlement {setl_id!r} of person {person_key} was never projected")
        return found


def month_of(when: dt.date | dt.datetime | None) -> dt.date | None:
    return None if when is None else dt.date(when.year, when.month, 1)


def _flow(admdvs: str, fund: str | None, when, amount: Decimal) -> Upsert:
    return Upsert(FUND_FLOW, (admdvs, fund or "", month_of(when)), add={"amount": amount, "lines": 1})


def _line(msg: Message, idx: int, e, kind: str, fund: str, **figures) -> Insert:
    row = {"threshold": None, "cumulative_before": None, "formula_amount": None, "counter": None,
           "cap_limit": None, "cap_used_before": None, "adjustment": None, "ratio": None, "base": None, **figures}
    return Insert(LINE, (
        msg.seq, idx, e.setl_id, msg.person_key, kind, fund, e.rule_id, e.clause, row["base"], row["ratio"],
        row["threshold"], row["cumulative_before"], row["formula_amount"], row["counter"], row["cap_limit"],
        row["cap_used_before"], e.amount if kind != "reversal" else -e.amount, row["adjustment"], e.pack,
        e.pack_version, e.event_id, e.recorded_at))


def fold_claims(state: ClaimsState, msg: Message) -> list[Op]:
    """Settlement rows, their lines, fund flows and warnings of one decision."""
    if msg.person_key is None:
        return []
    ops: list[Op] = []
    pk = msg.person_key
    enrol_area: str | None = None
    enrol_date: dt.date | None = None
    cancel_time: dt.datetime | None = None
    for idx, e in enumerate(msg.events):
        if isinstance(e, ev.SettlementFacts):
            sent = e.settlement
            state.settlements[(pk, e.setl_id)] = SetlMeta(sent.admdvs, sent.med_type == INPATIENT, e.ci_base_added,
                                                          e.assist_base_added, sent.medfee_sumamt, e.psn_part_amt,
                                                          Decimal(0))
            ops.append(Insert(SETTLEMENT, _facts_row(msg, e)))
        elif isinstance(e, ev.CriticalIllnessPaid):
            meta = state.meta(pk, e.setl_id)
            ops.append(_line(msg, idx, e, "adjustment" if e.adjustment else "payment", "critical_illness",
                             base=e.base, ratio=e.ratio, threshold=e.deductible, cumulative_before=e.cumulative_before,
                             cap_limit=e.cap_limit, cap_used_before=e.paid_before, adjustment=e.adjustment))
            if e.adjustment:
                meta.hifmi_adjusted += e.amount
                ops.append(Upsert(SETTLEMENT, (e.setl_id, pk), add={"hifmi_adjusted": e.amount}))
            ops.append(_flow(meta.admdvs, "critical_illness", e.recorded_at if e.adjustment else _setl_time(msg),
                             e.amount))
        elif isinstance(e, ev.SettlementRedecided):
            meta = state.meta(pk, e.setl_id)
            meta.assist_base_delta += e.assist_base_delta
            ops.append(Upsert(SETTLEMENT, (e.setl_id, pk), add={"assist_base_delta": e.assist_base_delta},
                              set={"redecided_status": e.status}))
        elif isinstance(e, ev.AssistancePaid):
            meta = state.meta(pk, e.setl_id)
            kind = "adjustment" if e.adjustment else "payment"
            ops.append(_line(msg, idx, e, kind, "assistance", base=e.base, ratio=e.ratio, threshold=e.threshold,
                             cumulative_before=e.cumulative_before, formula_amount=e.formula_amount,
                             counter=e.counter, cap_limit=e.cap_limit, cap_used_before=e.cap_used_before,
                             adjustment=e.adjustment))
            if e.adjustment:
                meta.maf_adjusted += e.amount
                ops.append(Upsert(SETTLEMENT, (e.setl_id, pk), add={"maf_adjusted": e.amount}))
            ops.append(_flow(meta.admdvs, "assistance", e.recorded_at if e.adjustment else _setl_time(msg), e.amount))
        elif isinstance(e, ev.HospitalBorne):
            meta = state.meta(pk, e.setl_id)
            ops.append(_line(msg, idx, e, "payment", "hospital", base=e.base, ratio=e.ratio))
            ops.append(_flow(meta.admdvs, "hospital", _setl_time(msg), e.amount))
        elif isinstance(e, ev.SettlementCancelled):
            state.meta(pk, e.setl_id)
            cancel_time = e.cancel_time
            ops.append(Upsert(SETTLEMENT, (e.setl_id, pk), set={"cancelled": True, "cancel_time": e.cancel_time}))
        elif isinstance(e, ev.PaymentReversed):
            meta = state.meta(pk, e.setl_id)
            ops.append(_line(msg, idx, e, "reversal", e.fund, counter=e.counter))
            ops.append(_flow(meta.admdvs, e.fund, cancel_time or e.recorded_at, -e.amount))
        elif isinstance(e, ev.WarningRaised):
            admdvs = state.meta(pk, e.setl_id).admdvs if e.setl_id else None
            ops.append(Insert(WARNING, (msg.seq, idx, pk, admdvs, e.year, e.code, e.clause, e.figure, e.threshold,
                                        e.setl_id, e.event_id, e.recorded_at)))
        elif isinstance(e, ev.EnrolmentRecorded):
            enrol_area = e.admdvs
            enrol_date = e.enrol_date
        elif isinstance(e, ev.PremiumSubsidyGranted) and e.subsidy and enrol_area:
            ops.append(_flow(enrol_area, e.fund, enrol_date, e.subsidy))
        elif isinstance(e, ev.TiltedGrantPaid) and e.granted:
            ops.append(_flow(e.admdvs, "assistance", e.approved_on, e.granted))
    return ops


def _setl_time(msg: Message) -> dt.datetime | None:
    """Payment lines count in the month the platform settled the stay (the facts lead the decision)."""
    first = msg.events[0]
    return first.settlement.setl_time if isinstance(first, ev.SettlementFacts) else first.recorded_at


def _facts_row(msg: Message, e: ev.SettlementFacts) -> tuple:
    """The settlement's row in SETTLEMENT column order (COPY needs no names)."""
    sent = e.settlement
    return (
        e.setl_id, msg.person_key, sent.mdtrt_id, sent.admdvs, e.year, sent.med_type, sent.med_type == INPATIENT,
        sent.insutype, sent.fixmedins_code, sent.begndate, sent.enddate, sent.setl_time, sent.dise_codg, e.pack,
        e.pack_version, e.status, sent.medfee_sumamt, sent.fulamt_ownpay_amt, sent.inscp_scp_amt, sent.hifp_pay,
        sent.oth_pay, e.oop, e.remaining,
        e.ci_base_added, e.assist_base_added, e.hifmi_pay, e.maf_pay, e.hosp_part_amt, e.psn_part_amt,
        Decimal(0), False, None, msg.seq, e.event_id, e.recorded_at, Decimal(0), Decimal(0), None)
