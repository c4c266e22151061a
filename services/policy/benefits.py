"""Which benefit lines a settlement gets, and how much: 大病, assistance, 就高不就低 (policy.md §4–§9)."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import msgspec

from events import ledger as ev
from events.messages import CHRONIC_SPECIAL, INPATIENT, RESIDENTS, Settlement
from events.money import ZERO
from services.policy.critical_illness import ci_payment, terms_for
from services.policy.formulas import FORMULAS, PlannedLine, Raw, Room, Stay, plan_line
from services.policy.pack import LineRule, Pack
from services.policy.state import Person, PersonYear


class Outcome(msgspec.Struct, frozen=True):
    """Everything one candidate status would pay for one settlement."""
    status: str | None
    oop: Decimal
    remaining: Decimal
    ci_base_added: Decimal
    assist_base_added: Decimal
    quota_base: Decimal
    ci: ev.CriticalIllnessPaid | None
    lines: list[PlannedLine]
    cap_limit: Decimal | None
    cap_used: Decimal
    own_used: dict[str, Decimal]          # own counters after this settlement's lines
    ci_deductible: Decimal | None         # 大病 deductible of the terms applied (None: no 大病 base)
    hifmi_pay: Decimal
    maf_pay: Decimal
    hosp_part_amt: Decimal
    psn_part_amt: Decimal


def applies(rule: LineRule, status: str, msg: Settlement, hospital: ev.Hospital, year: int) -> bool:
    return (not rule.statuses or status in rule.statuses) and _fits(rule, msg, hospital, year)


def _fits(rule: LineRule, msg: Settlement, hospital: ev.Hospital, year: int) -> bool:
    """`applies` without the status test (the rule index has done that)."""
    return ((not rule.in_province_only or hospital.in_province)
            and (not rule.years or rule.years[0] <= year <= rule.years[1])
            and (not rule.diagnoses or msg.dise_codg.startswith(tuple(rule.diagnoses))))


@dataclass(frozen=True, slots=True)
class _RuleIndex:
    """A pack's line rules by status, in pack order: computed once, read by every candidate of every settlement."""
    inpatient: dict[str | None, tuple[LineRule, ...]]
    outpatient: dict[tuple[str, str | None], tuple[LineRule, ...]]      # (kind, status); None: no status


_INDEXES: dict[int, tuple[Pack, _RuleIndex]] = {}


def _rule_index(pack: Pack) -> _RuleIndex:
    """Keyed by the pack object itself (held, so its id is not reused): what-if packs get their own index."""
    entry = _INDEXES.get(id(pack))
    if entry is None or entry[0] is not pack:
        if len(_INDEXES) > 64:
            _INDEXES.clear()
        inpatient = {s: tuple(r for r in pack.inpatient if not r.statuses or s in r.statuses) for s in pack.statuses}
        inpatient[None] = tuple(r for r in pack.inpatient if r.include_no_status)
        outpatient = {(k, s): tuple(r for r in pack.outpatient if r.kind == k and (not r.statuses or s in r.statuses))
                      for k in ("chronic", "special") for s in pack.statuses}
        outpatient.update({(k, None): tuple(r for r in pack.outpatient if r.kind == k and r.include_no_status)
                           for k in ("chronic", "special")})
        entry = _INDEXES[id(pack)] = (pack, _RuleIndex(inpatient, outpatient))
    return entry[1]


def _rules_for(pack: Pack, status: str | None, kind: str) -> tuple[LineRule, ...]:
    index = _rule_index(pack)
    found = index.inpatient.get(status) if kind == "inpatient" else index.outpatient.get((kind, status))
    if found is None:                 # a status the pack does not list: filter the long way
        rules = pack.inpatient if kind == "inpatient" else [r for r in pack.outpatient if r.kind == kind]
        found = tuple(r for r in rules if not r.statuses or status in r.statuses)
    return found


def outpatient_kind(msg: Settlement) -> str | None:
    if msg.med_type != CHRONIC_SPECIAL:
        return None                 # ordinary outpatient (11): no assistance in either text
    return "special" if msg.special_drug else "chronic"


class _NoYear:
    """The counters of a person-year nothing has been decided in yet (read only)."""
    __slots__ = ()
    ci_base = ci_paid = assist_base = assistance_cap_used = ZERO
    own_used: dict[str, Decimal] = {}


_NO_YEAR = _NoYear()


def evaluate(status: str | None, person: Person, msg: Settlement, hospital: ev.Hospital, pack: Pack,
             year_state: PersonYear | None = None, fixed_ci: Decimal | None = None,
             ci_event: bool = True) -> Outcome:
    """Pure: what `status` would give for `msg`, given the person's counters so far.

    `year_state` and `fixed_ci` let retroactive and year-end re-evaluation use the
    counters as they stood, without re-deciding 大病 (policy.md §11). `ci_event=False`
    leaves out the 大病 payment event (`choose` builds it for the winner only).
    """
    year = msg.enddate.year
    y = year_state or person.years.get(year) or _NO_YEAR
    inpatient = msg.med_type == INPATIENT
    total, hifp, oth = msg.medfee_sumamt, msg.hifp_pay, msg.oth_pay
    oop = msg.inscp_scp_amt - hifp
    owed = total - hifp - oth

    event, ci, deductible = None, ZERO, None
    ci_base_added = oop if msg.insutype == RESIDENTS and (inpatient or pack.ci_outpatient) else ZERO
    if ci_base_added:
        terms = terms_for(pack, status)
        deductible = terms.deductible
        ci = fixed_ci if fixed_ci is not None else min(ci_payment(terms, y.ci_base, oop, y.ci_paid), max(ZERO, owed))
        if ci > ZERO and fixed_ci is None and ci_event:
            event = _ci_event(msg, year, terms, oop, y, ci)
    remaining = oop - ci
    designated = hospital.designated
    assist_base_added = remaining if inpatient and designated else ZERO
    cap_limit = pack.status_cap(status)
    cap_used = y.assistance_cap_used
    lines: list[PlannedLine] = []
    own_used = y.own_used
    quota_base = maf = hosp = ZERO
    kind = "inpatient" if inpatient else outpatient_kind(msg)
    # "No status" gets only the lines open to every patient (临汾 二(四)3, policy.md §12).
    if designated and kind is not None and (status is not None or _rules_for(pack, None, kind)):
        if kind == "chronic" and msg.chronic_mgmt == "quota":
            if any(_fits(r, msg, hospital, year) for r in _rules_for(pack, status, "chronic")):
                quota_base = remaining      # 临汾 二(五): 限额管理的年底一次性救助 (year_close)
        elif kind is not None:
            room = Room(owed - ci, min(remaining, owed - ci), cap_limit, cap_used, dict(y.own_used))
            ooc_share = _ooc_share(pack, status, hospital, total) if inpatient else None
            stay = Stay(year, total, msg.fulamt_ownpay_amt, msg.inscp_scp_amt, hifp, oth, ci, remaining,
                        hospital.in_province, ooc_share)
            for rule in _rules_for(pack, status, kind):
                if _fits(rule, msg, hospital, year):
                    _plan(rule, stay, pack, y.assist_base, room, lines)
            if inpatient:
                _single_disease_and_hospital(status, msg, hospital, pack, stay, room, lines)
            cap_used, own_used = room.cap_used, room.own_used
            for l in lines:
                if l.fund == "assistance":
                    maf += l.amount
                elif l.fund == "hospital":
                    hosp += l.amount
    return Outcome(status, oop, remaining, ci_base_added, assist_base_added, quota_base, event, lines,
                   cap_limit, cap_used, own_used, deductible, ci, maf, hosp, total - hifp - oth - ci - maf - hosp)


def _ci_event(msg: Settlement, year: int, terms, oop: Decimal, y, ci: Decimal) -> ev.CriticalIllnessPaid:
    return ev.CriticalIllnessPaid(
        setl_id=msg.setl_id, psn_no=msg.psn_no, year=year, rule_id=terms.rule_id, clause=terms.clause,
        base=oop, cumulative_before=y.ci_base, deductible=terms.deductible, ratio=terms.ratio,
        cap_limit=terms.cap, paid_before=y.ci_paid, amount=ci)


def _plan(rule: LineRule, stay: Stay, pack: Pack, base_before: Decimal, room: Room, lines: list[PlannedLine]) -> None:
    paid_in_scope = sum((l.amount for l in lines if l.in_scope and l.fund == "assistance"), ZERO)
    raw = FORMULAS[rule.formula](rule, stay, pack=pack, base_before=base_before, paid_in_scope=paid_in_scope)
    if raw is not None:
        line = plan_line(rule.rule_id, rule.clause, rule.ratio, raw, rule.counter, rule.own_cap, room)
        if line is not None:
            lines.append(line)


def _ooc_share(pack: Pack, status: str | None, hospital: ev.Hospital, total: Decimal) -> Decimal | None:
    control = pack.ooc_control
    if control is None or status not in control.statuses or not hospital.in_province or hospital.ooc_class is None:
        return None
    return control.shares[hospital.ooc_class] * total


def _single_disease_and_hospital(status: str | None, msg: Settlement, hospital: ev.Hospital, pack: Pack, stay: Stay,
                                 room: Room, lines: list[PlannedLine]) -> None:
    """临汾 二(四)4 single-disease limit, then the hospital-borne amounts (二(四)4, 二(六))."""
    over_limit = None
    rule = pack.single_disease
    if rule and hospital.serious_disease_designated and status in rule.ratio_by_status:
        disease = next((d for d in rule.diseases if msg.dise_codg.startswith(d.prefix)), None)
        if disease is not None:
            ratio = rule.ratio_by_status[status]
            within = min(stay.medfee_sumamt, disease.limit)
            line = plan_line(rule.rule_id, rule.clause, ratio, Raw(within, ratio * within, in_scope=False),
                             "none", None, room)
            if line is not None:
                lines.append(line)
            over_limit = (rule.hospital_rule_id, rule.clause, Raw(stay.medfee_sumamt - within,
                                                                  stay.medfee_sumamt - within, in_scope=False))
    if stay.ooc_share is not None and pack.ooc_control is not None:
        control = pack.ooc_control
        excess = max(ZERO, stay.fulamt_ownpay_amt - stay.ooc_share)
        line = plan_line(control.rule_id, control.clause, None, Raw(stay.fulamt_ownpay_amt, excess, in_scope=False),
                         "none", None, room, fund="hospital")
        if line is not None:
            lines.append(line)
    if over_limit is not None:
        line = plan_line(over_limit[0], over_limit[1], None, over_limit[2], "none", None, room, fund="hospital")
        if line is not None:
            lines.append(line)


def choose(person: Person, msg: Settlement, hospital: ev.Hospital, pack: Pack,
           year_state: PersonYear | None = None) -> Outcome:
    """就高不就低 (青海 四(三), policy.md §9): the lowest psn_part_amt wins; ties go to the first listed.

    `year_state`: the counters to decide on instead of the person's own (a re-decision, policy.md §12).
    """
    best = None
    if person.statuses:
        valid = person.statuses_on(msg.enddate)
        if valid:
            for status in pack.statuses:
                if status in valid:
                    outcome = evaluate(status, person, msg, hospital, pack, year_state, ci_event=False)
                    if best is None or outcome.psn_part_amt < best.psn_part_amt:
                        best = outcome
    outcome = evaluate(None, person, msg, hospital, pack, year_state, ci_event=False)   # "no status" loses ties
    if best is None or outcome.psn_part_amt < best.psn_part_amt:
        best = outcome
    if best.ci_base_added and best.hifmi_pay > ZERO:
        year = msg.enddate.year
        event = _ci_event(msg, year, terms_for(pack, best.status), best.oop,
                          year_state or person.years.get(year) or _NO_YEAR, best.hifmi_pay)
        best = msgspec.structs.replace(best, ci=event)
    return best
