"""A status recognised late re-decides the stays it covers (policy.md §12; 青海 五(一) look-back, §11).

When a grant arrives, every decided, uncancelled settlement of the person discharged in
`[begndate, enddate or ∞]` is decided again, in its original order, as if the status had
been known: a simulated person-year is run forward through the person's settlements,
re-deciding those in range (大病 and assistance) and carrying the others as they were
paid. Where a re-decision leaves the person less to pay, the difference is paid per fund
as an adjustment — 大病 (`hifmi_pay`) and assistance (`maf_pay`), one line per rule —
bounded by the caps as they stand now, never by the simulation; nothing is taken back.

Qinghai `expenditure_poverty` also looks back 180 days before `begndate` (五(一)):
those stays get assistance only, with 大病 as it was paid (policy.md §11).

Hospital-borne amounts (out-of-catalogue control, over single-disease limits) are not
re-decided: the stay's hospital bill is closed, and the funds paid are 大病 and assistance.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from events import ledger as ev
from events.messages import INPATIENT, PsnIdentity
from events.money import ZERO
from events.results import SettlementAdjustment
from services.policy.critical_illness import terms_for
from services.policy.formulas import PlannedLine
from services.policy.pack import Pack
from services.policy.settlement_decision import payment_event
from services.policy.benefits import Outcome, choose, evaluate
from services.policy.decided import paid_at_once
from services.policy.shown import binding_cap, result_line
from services.policy.state import Person, PersonYear, SettlementRecord

PackFor = Callable[[ev.SettlementFacts], Pack | None]
YearClosed = Callable[[str, int], bool]


@dataclass(slots=True)
class _Counters:
    """The person-year's counters as they stand now, moved by each adjustment paid (the caps' truth)."""
    ci_paid: Decimal
    shared: Decimal
    own: dict[str, Decimal] = field(default_factory=dict)

    @classmethod
    def of(cls, y: PersonYear | None) -> _Counters:
        return cls(ZERO, ZERO) if y is None else cls(y.ci_paid, y.assistance_cap_used, dict(y.own_used))


def redecide_for_grant(person: Person, msg: PsnIdentity, pack: Pack, pack_for: PackFor,
                       year_closed: YearClosed) -> tuple[list[ev.LedgerEvent], list[SettlementAdjustment]]:
    """The events and adjustments a grant of `msg.status` owes the person's decided settlements."""
    days = pack.retroactive_days.get(msg.status)
    look_back = msg.begndate - dt.timedelta(days=days) if days else None
    known = _with_status(person, msg)
    simulated: dict[int, PersonYear] = {}
    now: dict[int, _Counters] = {}
    events: list[ev.LedgerEvent] = []
    results: list[SettlementAdjustment] = []
    for record in person.settlements.values():
        if record.cancelled:
            continue
        facts = record.facts
        y = simulated.get(facts.year)
        if y is None:
            y = simulated[facts.year] = _year_before_settlements(person, facts.year)
        stay = facts.settlement
        covered = msg.begndate <= stay.enddate and (msg.enddate is None or stay.enddate <= msg.enddate)
        looked_back = (look_back is not None and look_back <= stay.enddate < msg.begndate
                       and stay.med_type == INPATIENT)
        stay_pack = pack_for(facts) if covered or looked_back else None
        if stay_pack is None:
            _carry(y, record)
            continue
        if stay.chronic_mgmt == "quota" and (facts.after_year_close or year_closed(stay.admdvs, facts.year)):
            stay = paid_at_once(stay)          # as settlement_decision.py: no close will pay it
        if covered:
            outcome = choose(known, stay, facts.hospital, stay_pack, year_state=y)
            why = (f"status {msg.status} recognised from {msg.begndate} ({msg.source_dept} {msg.doc_no}): "
                   f"decided again as if known (policy.md §12)")
        else:
            outcome = _looked_back(known, msg.status, stay, record, stay_pack, y)
            why = f"retroactive: {msg.status} recognised {msg.begndate} ({pack.retroactive_clause})"
        counters = now.get(facts.year)
        if counters is None:
            counters = now[facts.year] = _Counters.of(person.years.get(facts.year))
        found = _adjust(record, outcome, stay_pack, counters, why, pay_ci=covered)
        if found is not None:
            events.extend(found[0])
            results.append(found[1])
        _simulate(y, outcome)
    return events, results


def _with_status(person: Person, msg: PsnIdentity) -> Person:
    """The person as if the grant had been known: their statuses plus the new span (no counters)."""
    statuses = {status: [list(span) for span in spans] for status, spans in person.statuses.items()}
    statuses.setdefault(msg.status, []).append([msg.begndate, msg.enddate])
    return Person(person.psn_no, statuses=statuses, enrolments=person.enrolments)


def _year_before_settlements(person: Person, year: int) -> PersonYear:
    """Tilted grants are taken as counted first: the simulation never gives room the cap no longer has."""
    granted = sum((g.granted for g in person.grants.values() if g.year == year and g.granted), ZERO)
    return PersonYear(year, assistance_cap_used=granted, own_used={"tilted_grant": granted} if granted else {})


def _looked_back(known: Person, status: str, stay, record: SettlementRecord, pack: Pack, y: PersonYear) -> Outcome:
    """五(一) look-back: assistance with 大病 as paid, the new status among the candidates; most assistance wins."""
    valid = known.statuses_on(stay.enddate) | {status}
    paid_ci = record.paid(ev.CriticalIllnessPaid)
    outcomes = [evaluate(s, known, stay, record.facts.hospital, pack, y, paid_ci)
                for s in pack.statuses if s in valid]
    return max(outcomes, key=lambda o: o.maf_pay)


def _adjust(record: SettlementRecord, outcome: Outcome, pack: Pack, now: _Counters, why: str,
            pay_ci: bool) -> tuple[list[ev.LedgerEvent], SettlementAdjustment] | None:
    """What the re-decision owes beyond what was paid, within the caps as they stand now."""
    facts = record.facts
    owed = record.owed()
    paid_ci = record.paid(ev.CriticalIllnessPaid)
    extra_ci = ZERO
    if pay_ci and outcome.ci is not None and outcome.hifmi_pay > paid_ci:
        extra_ci = min(outcome.hifmi_pay - paid_ci, owed)
        cap = terms_for(pack, outcome.status).cap
        if cap is not None:
            extra_ci = min(extra_ci, max(ZERO, cap - now.ci_paid))
    left = min(max(ZERO, outcome.maf_pay - record.paid(ev.AssistancePaid)), owed - extra_ci)
    paid_by_rule: dict[str, Decimal] = {}
    for p in record.payments:
        if isinstance(p, ev.AssistancePaid):
            paid_by_rule[p.rule_id] = paid_by_rule.get(p.rule_id, ZERO) + p.amount
    lines: list[ev.AssistancePaid] = []
    for line in outcome.lines:
        if line.fund != "assistance" or left <= ZERO:
            continue
        give = _within_caps(line, min(line.amount - paid_by_rule.get(line.rule_id, ZERO), left), pack, now)
        if give <= ZERO:
            continue
        used_before = now.shared if line.counter == "shared" else now.own.get(line.rule_id, ZERO)
        lines.append(payment_event(facts.setl_id, facts.psn_no, facts.year, line, adjustment=why, amount=give,
                                   cap_used_before=used_before if line.counter != "none" else None))
        if line.counter == "shared":
            now.shared += give
        if line.counter in ("shared", "own"):
            now.own[line.rule_id] = now.own.get(line.rule_id, ZERO) + give
        left -= give
    quota_moved = outcome.quota_base != record.quota_base and facts.settlement.chronic_mgmt == "quota"
    if extra_ci <= ZERO and not lines and not quota_moved:
        return None
    now.ci_paid += extra_ci
    designated_stay = facts.settlement.med_type == INPATIENT and facts.hospital.designated
    events: list[ev.LedgerEvent] = [ev.SettlementRedecided(
        setl_id=facts.setl_id, psn_no=facts.psn_no, year=facts.year, status=outcome.status, reason=why,
        remaining_delta=-extra_ci, assist_base_delta=-extra_ci if designated_stay else ZERO,
        quota_base=outcome.quota_base if quota_moved else None)]
    shown = []
    if extra_ci > ZERO:
        assert outcome.ci is not None
        ci = msgspec.structs.replace(outcome.ci, amount=extra_ci, adjustment=why, already_paid=paid_ci)
        events.append(ci)
        shown.append(result_line("critical_illness", ci.rule_id, ci.clause, ci.base, ci.ratio, extra_ci))
    events.extend(lines)
    shown.extend(result_line("assistance", l.rule_id, l.clause, l.base, l.ratio, l.amount) for l in lines)
    maf = sum((l.amount for l in lines), ZERO)
    return events, SettlementAdjustment(
        setl_id=facts.setl_id, psn_no=facts.psn_no, year=facts.year, pack=pack.id, reason=why, maf_pay=maf,
        hifmi_pay=extra_ci, lines=shown, cap=binding_cap(pack, outcome.status, now.shared, now.own))


def _within_caps(line: PlannedLine, amount: Decimal, pack: Pack, now: _Counters) -> Decimal:
    if line.counter == "shared" and line.cap_limit is not None:
        amount = min(amount, max(ZERO, line.cap_limit - now.shared))
    own_cap = pack.own_cap_of(line.rule_id)
    if own_cap is not None and line.counter in ("shared", "own"):
        amount = min(amount, max(ZERO, own_cap - now.own.get(line.rule_id, ZERO)))
    return amount


def _carry(y: PersonYear, record: SettlementRecord) -> None:
    """A settlement outside the grant's reach counts in the simulation as it was paid."""
    facts = record.facts
    y.ci_base += facts.ci_base_added
    y.ci_paid += record.paid(ev.CriticalIllnessPaid)
    y.assist_base += facts.assist_base_added + record.assist_base_delta
    for p in record.payments:
        if isinstance(p, ev.AssistancePaid):
            _count(y, p.rule_id, p.counter, p.amount)


def _simulate(y: PersonYear, outcome: Outcome) -> None:
    """A re-decided settlement counts in the simulation as the re-decision would have paid it."""
    y.ci_base += outcome.ci_base_added
    y.ci_paid += outcome.hifmi_pay
    y.assist_base += outcome.assist_base_added
    for line in outcome.lines:
        if line.fund == "assistance":
            _count(y, line.rule_id, line.counter, line.amount)


def _count(y: PersonYear, rule_id: str, counter: str, amount: Decimal) -> None:
    if counter == "shared":
        y.assistance_cap_used += amount
    if counter in ("shared", "own"):
        y.own_used[rule_id] = y.own_used.get(rule_id, ZERO) + amount
