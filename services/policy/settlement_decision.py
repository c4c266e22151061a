"""Deciding a settlement or its cancellation: the events and the result (integration.md §1–§2)."""
from __future__ import annotations

import msgspec

from events import codes
from events import ledger as ev
from events.messages import INPATIENT, Settlement, SettlementCancel
from events.money import ZERO
from events.results import CancelResult, Line, SettlementResult, as_duplicate
from services.policy.decision import SETL_ID, Decision, Rejection
from services.policy.formulas import PlannedLine
from services.policy.pack import MissingParameter, Pack
from services.policy.benefits import Outcome, choose
from services.policy.decided import paid_at_once
from services.policy.shown import binding_cap, result_line
from services.policy.state import Person, PersonYear


def duplicate_of(person: Person, setl_id: str) -> SettlementResult | None:
    """The stored answer to a settlement already decided, saying so if it was cancelled since (§2)."""
    known = person.settlements.get(setl_id)
    if known is None or known.result is None:
        return None
    answer = as_duplicate(known.result)
    if known.cancelled:
        answer = msgspec.structs.replace(answer, cancelled=True, cancel_time=known.cancel_time)
    return answer  # type: ignore[return-value]


def decide_settlement(person: Person, msg: Settlement, hospital: ev.Hospital | None, pack: Pack,
                      year_closed: bool = False, key_taken: bool = False) -> Decision:
    """`year_closed`: the area's policy year of this settlement was closed before it arrived.
    `key_taken`: the `setl_id` is held by another person (integration.md §2 "Keys are global")."""
    duplicate = duplicate_of(person, msg.setl_id)
    if duplicate is not None:
        return Decision(results=[duplicate], psn_no=msg.psn_no)
    if key_taken:
        raise Rejection(codes.SETL_ID_CONFLICT, f"settlement {msg.setl_id!r} was already decided for another "
                                                "person; a setl_id is paid once (integration.md §2)")
    year = msg.enddate.year
    if year not in person.enrolments:
        raise Rejection(codes.NOT_ENROLLED, f"no enrolment of this person for {year}; send the enrolment first")
    if hospital is None:
        raise Rejection(codes.UNKNOWN_MEDINS, f"hospital {msg.fixmedins_code!r} is not a known medins")
    # 临汾 二(五): quota visits are paid once at year end; one settled after that end would never be paid,
    # so it is assisted at its visit like a 住院管理 one, at the same §6 ratios within the same cap.
    late_quota = year_closed and msg.chronic_mgmt == "quota"
    outcome = choose(person, paid_at_once(msg) if late_quota else msg, hospital, pack)
    y = person.years.get(year) or PersonYear(year)
    events: list[ev.LedgerEvent] = [facts_of(msg, hospital, outcome, y, late_quota)]
    if outcome.ci is not None:
        events.append(outcome.ci)
    events.extend(payment_event(msg.setl_id, msg.psn_no, year, line) for line in outcome.lines)
    warnings = raised_warnings(y, msg, outcome, pack)
    events.extend(warnings)
    result = SettlementResult(
        setl_id=msg.setl_id, psn_no=msg.psn_no, result="settled", year=year, pack=pack.id, status=outcome.status,
        medfee_sumamt=msg.medfee_sumamt, hifp_pay=msg.hifp_pay, oth_pay=msg.oth_pay, hifmi_pay=outcome.hifmi_pay,
        maf_pay=outcome.maf_pay, hosp_part_amt=outcome.hosp_part_amt, psn_part_amt=outcome.psn_part_amt,
        lines=result_lines(outcome), cap=binding_cap(pack, outcome.status, outcome.cap_used, outcome.own_used),
        warnings=[w.code for w in warnings])
    return Decision(events, [result], psn_no=msg.psn_no, claims=[(SETL_ID, msg.setl_id)])


def facts_of(msg: Settlement, hospital: ev.Hospital, outcome: Outcome, y: PersonYear,
             after_year_close: bool) -> ev.SettlementFacts:
    facts_type = ev.HospitalStaySettled if msg.med_type == INPATIENT else ev.OutpatientVisitSettled
    return facts_type(
        setl_id=msg.setl_id, psn_no=msg.psn_no, year=y.year, settlement=msg, hospital=hospital,
        status=outcome.status, oop=outcome.oop, remaining=outcome.remaining, ci_base_before=y.ci_base,
        ci_base_added=outcome.ci_base_added, assist_base_before=y.assist_base,
        assist_base_added=outcome.assist_base_added, quota_base=outcome.quota_base, hifmi_pay=outcome.hifmi_pay,
        maf_pay=outcome.maf_pay, hosp_part_amt=outcome.hosp_part_amt, psn_part_amt=outcome.psn_part_amt,
        after_year_close=after_year_close, ci_deductible=outcome.ci_deductible)


def payment_event(setl_id: str, psn_no: str, year: int, line: PlannedLine, adjustment: str | None = None,
                  amount=None, cap_used_before=None):
    """The event of one planned line; an adjustment may pay less than the line (`amount`) against the
    counters as they stand now (`cap_used_before`)."""
    if line.fund == "hospital":
        return ev.HospitalBorne(setl_id=setl_id, psn_no=psn_no, year=year, rule_id=line.rule_id, clause=line.clause,
                                base=line.base, ratio=line.ratio, amount=line.amount)
    return ev.AssistancePaid(
        setl_id=setl_id, psn_no=psn_no, year=year, rule_id=line.rule_id, clause=line.clause, base=line.base,
        ratio=line.ratio, threshold=line.threshold, cumulative_before=line.cumulative_before,
        formula_amount=line.formula_amount, counter=line.counter, cap_limit=line.cap_limit,
        cap_used_before=line.cap_used_before if cap_used_before is None else cap_used_before,
        amount=line.amount if amount is None else amount, adjustment=adjustment)


def result_lines(outcome: Outcome) -> list[Line]:
    lines = []
    if outcome.ci is not None:
        ci = outcome.ci
        lines.append(result_line("critical_illness", ci.rule_id, ci.clause, ci.base, ci.ratio, ci.amount))
    lines.extend(result_line(l.fund, l.rule_id, l.clause, l.base, l.ratio, l.amount)  # type: ignore[arg-type]
                 for l in outcome.lines)
    return lines


def raised_warnings(y: PersonYear, msg: Settlement, outcome: Outcome, pack: Pack) -> list[ev.WarningRaised]:
    """因病返贫致贫双预警: raised once per person-year when a figure first passes its threshold (policy.md §7)."""
    raised = []
    for rule in pack.warnings:
        if rule.code in y.warnings or (rule.insutype and rule.insutype != msg.insutype):
            continue
        if rule.measure == "employee_burden":
            figure = y.burden + outcome.psn_part_amt
            threshold = rule.threshold_by_year.get(str(y.year))
            if threshold is None:               # never a silent "no warning" (policy.md §12)
                raise MissingParameter(f"warnings.{rule.code}.threshold_by_year", y.year, pack.id, rule.clause)
        else:
            # 临汾 三(三): in-scope self-pay of stays at every hospital, designated or not (policy.md §12)
            if msg.med_type != INPATIENT or rule.income_share is None:
                continue
            threshold = pack.income_threshold(rule.income_share, y.year)
            if not outcome.remaining:
                continue
            figure = y.inpatient_remaining + outcome.remaining
        if figure > threshold:
            raised.append(ev.WarningRaised(psn_no=msg.psn_no, year=y.year, code=rule.code, clause=rule.clause,
                                           figure=figure, threshold=threshold, setl_id=msg.setl_id))
    return raised


def decide_cancel(person: Person, msg: SettlementCancel, pack: Pack | None) -> Decision:
    record = person.settlements.get(msg.setl_id)
    if record is None:
        raise Rejection(codes.UNKNOWN_SETTLEMENT, f"settlement {msg.setl_id!r} of this person is not in the ledger")
    if record.cancelled and record.cancel_result is not None:
        return Decision(results=[as_duplicate(record.cancel_result)], psn_no=msg.psn_no)
    facts = record.facts
    events: list[ev.LedgerEvent] = [ev.SettlementCancelled(setl_id=facts.setl_id, psn_no=facts.psn_no,
                                                           year=facts.year, cancel_time=msg.cancel_time)]
    totals = {"critical_illness": ZERO, "assistance": ZERO, "hospital": ZERO}
    y = person.years.get(facts.year) or PersonYear(facts.year)
    shared, own = y.assistance_cap_used, dict(y.own_used)
    for payment in record.payments:
        fund = ("critical_illness" if isinstance(payment, ev.CriticalIllnessPaid)
                else "hospital" if isinstance(payment, ev.HospitalBorne) else "assistance")
        counter = payment.counter if isinstance(payment, ev.AssistancePaid) else "none"
        totals[fund] += payment.amount
        if counter == "shared":
            shared -= payment.amount
        if counter in ("shared", "own"):
            own[payment.rule_id] = own.get(payment.rule_id, ZERO) - payment.amount
        events.append(ev.PaymentReversed(setl_id=facts.setl_id, psn_no=facts.psn_no, year=facts.year, fund=fund,
                                         rule_id=payment.rule_id, clause=payment.clause, counter=counter,
                                         amount=payment.amount))
    result = CancelResult(setl_id=msg.setl_id, psn_no=msg.psn_no, result="reversed", year=facts.year,
                          hifmi_pay=totals["critical_illness"], maf_pay=totals["assistance"],
                          hosp_part_amt=totals["hospital"],
                          cap=binding_cap(pack, record.status, shared, own) if pack else None)
    return Decision(events, [result], psn_no=msg.psn_no)
