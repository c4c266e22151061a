"""救助身份 granted or revoked, and the retroactive assistance a late recognition owes (青海 五(一))."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from events import codes
from events import ledger as ev
from events.messages import PsnIdentity, Settlement
from events.money import ZERO
from events.results import IdentityResult, Line, SettlementAdjustment
from services.policy.decision import Decision, Rejection
from services.policy.pack import Pack
from services.policy.settle import cap_of
from services.policy.settlement import INPATIENT, Hospital, evaluate
from services.policy.state import Person, PersonYear, SettlementRecord, identity_key


def decide_identity(person: Person, msg: PsnIdentity, pack: Pack) -> Decision:
    if not pack.knows(msg.status):
        raise Rejection(codes.UNKNOWN_STATUS, f"status {msg.status!r} is not a status of pack {pack.id}")
    key = identity_key(msg.status, msg.action, msg.begndate, msg.enddate if msg.action == "grant" else None, msg.doc_no)
    if key in person.identities:
        return Decision(results=[IdentityResult(psn_no=msg.psn_no, status=msg.status, action=msg.action,
                                                result="duplicate", pack=pack.id)], psn_no=msg.psn_no)
    if msg.action == "revoke":
        event: ev.LedgerEvent = ev.StatusRevoked(psn_no=msg.psn_no, admdvs=msg.admdvs, status=msg.status,
                                                 begndate=msg.begndate, source_dept=msg.source_dept, doc_no=msg.doc_no)
        adjustments: list = []
        results: list = []
    else:
        event = ev.StatusGranted(psn_no=msg.psn_no, admdvs=msg.admdvs, status=msg.status, begndate=msg.begndate,
                                 enddate=msg.enddate, source_dept=msg.source_dept, doc_no=msg.doc_no)
        adjustments, results = retroactive(person, msg, pack)
    result = IdentityResult(psn_no=msg.psn_no, status=msg.status, action=msg.action, result="recorded",
                            pack=pack.id, adjustments=len(results))
    return Decision([event, *adjustments], [result, *results], psn_no=msg.psn_no)


def settlement_of(facts: ev.SettlementFacts, chronic_mgmt: str | None = None) -> Settlement:
    """The settlement as the platform sent it, to evaluate it again."""
    return Settlement(
        setl_id=facts.setl_id, mdtrt_id=facts.mdtrt_id, psn_no=facts.psn_no, admdvs=facts.admdvs,
        insutype=facts.insutype, med_type=facts.med_type, fixmedins_code=facts.fixmedins_code,  # type: ignore[arg-type]
        begndate=facts.begndate, enddate=facts.enddate, setl_time=facts.setl_time, dise_codg=facts.dise_codg,
        medfee_sumamt=facts.medfee_sumamt, fulamt_ownpay_amt=facts.fulamt_ownpay_amt,
        inscp_scp_amt=facts.inscp_scp_amt, hifp_pay=facts.hifp_pay, oth_pay=facts.oth_pay,
        chronic_mgmt=chronic_mgmt or facts.chronic_mgmt, special_drug=facts.special_drug)  # type: ignore[arg-type]


def hospital_of(facts: ev.SettlementFacts) -> Hospital:
    return Hospital(facts.fixmedins_code, facts.designated, facts.in_province, facts.ooc_class,
                    facts.serious_disease_designated)


def shared_paid(record: SettlementRecord) -> Decimal:
    return sum((p.amount for p in record.payments if isinstance(p, ev.AssistancePaid) and p.counter == "shared"), ZERO)


def retroactive(person: Person, msg: PsnIdentity, pack: Pack) -> tuple[list[ev.LedgerEvent], list[SettlementAdjustment]]:
    """Stays discharged in [begndate − N days, begndate) are assisted again with the new status
    among the candidates; the missing part is paid within the cap, nothing is taken back (policy.md §11)."""
    days = pack.retroactive_days.get(msg.status)
    if not days:
        return [], []
    start = msg.begndate - dt.timedelta(days=days)
    used = {y: s.assistance_cap_used for y, s in person.years.items()}
    events: list[ev.LedgerEvent] = []
    results: list[SettlementAdjustment] = []
    why = f"retroactive: {msg.status} recognised {msg.begndate} ({pack.retroactive_clause})"
    bases: dict[int, Decimal] = {}     # running assistance base in decision order, cancellations taken out (§9)
    for record in person.settlements.values():
        facts = record.facts
        base_before = bases.get(facts.year, ZERO)
        if not record.cancelled:
            bases[facts.year] = base_before + facts.assist_base_added
        if record.cancelled or facts.med_type != INPATIENT or not start <= facts.enddate < msg.begndate:
            continue
        paid = record.paid(ev.AssistancePaid)
        year_used = used.get(facts.year, ZERO)
        state = PersonYear(facts.year, ci_base=facts.ci_base_before, assist_base=base_before,
                           assistance_cap_used=year_used - shared_paid(record))
        candidates = [s for s in pack.statuses if s in person.statuses_on(facts.enddate) or s == msg.status]
        outcomes = [evaluate(s, person, settlement_of(facts), hospital_of(facts), pack, state, facts.hifmi_pay)
                    for s in candidates]
        best = max(outcomes, key=lambda o: o.maf_pay, default=None)
        if best is None or best.maf_pay <= paid:
            continue
        extra = best.maf_pay - paid
        counter = "shared" if best.cap_limit is not None else "none"
        if best.cap_limit is not None:
            extra = min(extra, max(ZERO, best.cap_limit - year_used))
        if extra <= ZERO:
            continue
        main = next(l for l in best.lines if l.fund == "assistance")
        line = ev.AssistancePaid(
            setl_id=facts.setl_id, psn_no=facts.psn_no, year=facts.year, rule_id=main.rule_id, clause=main.clause,
            base=facts.remaining, ratio=main.ratio, threshold=main.threshold, cumulative_before=main.cumulative_before,
            formula_amount=best.maf_pay, counter=counter, cap_limit=best.cap_limit,
            cap_used_before=year_used if counter == "shared" else None, amount=extra, adjustment=why)
        if counter == "shared":
            used[facts.year] = year_used + extra
        events.append(line)
        results.append(SettlementAdjustment(
            setl_id=facts.setl_id, psn_no=facts.psn_no, year=facts.year, pack=pack.id, reason=why, maf_pay=extra,
            lines=[Line("assistance", main.rule_id, main.clause, facts.remaining, main.ratio, extra)],
            cap=cap_of(best.cap_limit, used.get(facts.year, ZERO))))
    return events, results

