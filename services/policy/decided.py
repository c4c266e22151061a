"""A settlement as it was decided: the hospital snapshot and the inbound message its facts keep, so a
re-decision (a late status, the year end, the audit) sees what the first decision saw."""
from __future__ import annotations

from dataclasses import dataclass

from events import ledger as ev
from events.messages import Settlement


@dataclass(frozen=True, slots=True)
class Hospital:
    code: str
    designated: bool
    in_province: bool
    ooc_class: str | None
    serious_disease_designated: bool

    @classmethod
    def from_event(cls, e: ev.MedinsRecorded) -> Hospital:
        return cls(e.fixmedins_code, e.designated, e.in_province, e.ooc_class, e.serious_disease_designated)


def hospital_of(facts: ev.SettlementFacts) -> Hospital:
    """The hospital as it was when the settlement was decided (its facts keep a snapshot)."""
    return Hospital(facts.fixmedins_code, facts.designated, facts.in_province, facts.ooc_class,
                    facts.serious_disease_designated)


def settlement_of(facts: ev.SettlementFacts, chronic_mgmt: str | None = None) -> Settlement:
    """The settlement as the platform sent it, to decide it again."""
    return Settlement(
        setl_id=facts.setl_id, mdtrt_id=facts.mdtrt_id, psn_no=facts.psn_no, admdvs=facts.admdvs,
        insutype=facts.insutype, med_type=facts.med_type, fixmedins_code=facts.fixmedins_code,  # type: ignore[arg-type]
        begndate=facts.begndate, enddate=facts.enddate, setl_time=facts.setl_time, dise_codg=facts.dise_codg,
        medfee_sumamt=facts.medfee_sumamt, fulamt_ownpay_amt=facts.fulamt_ownpay_amt,
        inscp_scp_amt=facts.inscp_scp_amt, hifp_pay=facts.hifp_pay, oth_pay=facts.oth_pay,
        chronic_mgmt=chronic_mgmt or facts.chronic_mgmt, special_drug=facts.special_drug)  # type: ignore[arg-type]
