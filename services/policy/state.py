"""A person's state, folded from their events: the only input decisions read.

`evolve` is the fold `(person, event) → person` (in place, for speed: the
caller owns the state). Live adjudication, offline replay and audit replay
all rebuild state through it, so they cannot drift apart.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from events import ledger as ev
from events.messages import INPATIENT
from events.money import ZERO
from events.results import (CancelResult, GrantResult, IdentityResult, Outbound, SettlementResult,
                            SubsidyResult)


@dataclass(slots=True)
class PersonYear:
    """Counters of one person and policy year (policy.md §9)."""
    year: int
    ci_base: Decimal = ZERO          # cumulative oop counted for 大病
    ci_paid: Decimal = ZERO
    assist_base: Decimal = ZERO      # cumulative inpatient `remaining` at designated hospitals (§5 bases)
    inpatient_remaining: Decimal = ZERO   # the same at every hospital (临汾 三(三) warning, policy.md §12)
    assistance_cap_used: Decimal = ZERO
    own_used: dict[str, Decimal] = field(default_factory=dict)
    rule_totals: dict[str, Decimal] = field(default_factory=dict)
    burden: Decimal = ZERO           # cumulative psn_part_amt (Qinghai employee warning)
    warnings: set[str] = field(default_factory=set)
    quota_settled: bool = False


@dataclass(slots=True)
class SettlementRecord:
    facts: ev.SettlementFacts
    payments: list[ev.CriticalIllnessPaid | ev.AssistancePaid | ev.HospitalBorne] = field(default_factory=list)
    cancelled: bool = False
    cancel_time: dt.datetime | None = None
    result: SettlementResult | None = None
    cancel_result: CancelResult | None = None
    # Moved by a re-decision after a status recognised late (policy.md §12): see ev.SettlementRedecided.
    status: str | None = None
    remaining_delta: Decimal = ZERO
    assist_base_delta: Decimal = ZERO
    quota_base: Decimal = ZERO

    def paid(self, kind: type) -> Decimal:
        return sum((p.amount for p in self.payments if isinstance(p, kind)), ZERO)

    def adjusted(self) -> Decimal:
        """What was paid after the decision (re-decisions, year end): it lowered what the person pays."""
        return sum((p.amount for p in self.payments
                    if isinstance(p, (ev.AssistancePaid, ev.CriticalIllnessPaid)) and p.adjustment), ZERO)

    def owed(self) -> Decimal:
        """What the person still pays for this stay after everything paid so far."""
        return self.facts.psn_part_amt - self.adjusted()


@dataclass(slots=True)
class Person:
    psn_no: str
    statuses: dict[str, list[list[dt.date | None]]] = field(default_factory=dict)
    identities: dict[tuple, IdentityResult | None] = field(default_factory=dict)
    enrolments: dict[int, ev.EnrolmentRecorded] = field(default_factory=dict)
    subsidies: dict[int, SubsidyResult] = field(default_factory=dict)
    settlements: dict[str, SettlementRecord] = field(default_factory=dict)
    grants: dict[str, GrantResult] = field(default_factory=dict)
    years: dict[int, PersonYear] = field(default_factory=dict)
    head_hash: str = ""
    version: int = 0                 # stream sequence of the person's last commit (0 = none)

    def year(self, year: int) -> PersonYear:
        found = self.years.get(year)
        if found is None:
            found = self.years[year] = PersonYear(year)
        return found

    def statuses_on(self, day: dt.date) -> set[str]:
        """Statuses valid on `day` (a revoke ends one the day before its begndate)."""
        valid = set()
        for status, spans in self.statuses.items():
            for begin, end in spans:
                if begin <= day and (end is None or day <= end):
                    valid.add(status)
                    break
        return valid


def identity_key(status: str, action: str, begndate: dt.date, enddate: dt.date | None, doc_no: str) -> tuple:
    return (status, action, begndate, enddate, doc_no)


def evolve(person: Person, event: ev.LedgerEvent) -> None:
    handler = _HANDLERS.get(type(event))
    if handler is not None:
        handler(person, event)
    if event.hash:
        person.head_hash = event.hash


def apply_commit(person: Person, commit: ev.Commit, sequence: int = 0) -> None:
    """Fold a whole decision: its events, then the answers kept for duplicates."""
    for event in commit.events:
        evolve(person, event)
    for result in commit.results:
        remember(person, result)
    if sequence:
        person.version = sequence


def remember(person: Person, result: Outbound) -> None:
    """Keep the answer so a repeat of the same key gets it back (integration.md §2)."""
    if isinstance(result, SettlementResult) and result.setl_id in person.settlements:
        person.settlements[result.setl_id].result = result
    elif isinstance(result, CancelResult) and result.setl_id in person.settlements:
        person.settlements[result.setl_id].cancel_result = result
    elif isinstance(result, SubsidyResult) and result.year is not None:
        person.subsidies[result.year] = result
    elif isinstance(result, GrantResult) and result.grant_id is not None:
        person.grants[result.grant_id] = result


def _granted(p: Person, e: ev.StatusGranted) -> None:
    p.statuses.setdefault(e.status, []).append([e.begndate, e.enddate])
    p.identities[identity_key(e.status, "grant", e.begndate, e.enddate, e.doc_no)] = None


def _revoked(p: Person, e: ev.StatusRevoked) -> None:
    last_day = e.begndate - dt.timedelta(days=1)
    for span in p.statuses.get(e.status, []):
        if span[1] is None or span[1] > last_day:
            span[1] = last_day
    p.identities[identity_key(e.status, "revoke", e.begndate, None, e.doc_no)] = None


def _enrolled(p: Person, e: ev.EnrolmentRecorded) -> None:
    p.enrolments[e.year] = e


def _settled(p: Person, e: ev.SettlementFacts) -> None:
    p.settlements[e.setl_id] = SettlementRecord(e, status=e.status, quota_base=e.quota_base)
    y = p.year(e.year)
    y.ci_base += e.ci_base_added
    y.assist_base += e.assist_base_added
    if e.settlement.med_type == INPATIENT:
        y.inpatient_remaining += e.remaining
    y.burden += e.psn_part_amt


def _ci_paid(p: Person, e: ev.CriticalIllnessPaid) -> None:
    p.settlements[e.setl_id].payments.append(e)
    y = p.year(e.year)
    y.ci_paid += e.amount
    y.rule_totals[e.rule_id] = y.rule_totals.get(e.rule_id, ZERO) + e.amount
    if e.adjustment:
        y.burden -= e.amount


def _redecided(p: Person, e: ev.SettlementRedecided) -> None:
    record = p.settlements[e.setl_id]
    record.status = e.status
    record.remaining_delta += e.remaining_delta
    record.assist_base_delta += e.assist_base_delta
    if e.quota_base is not None:
        record.quota_base = e.quota_base
    y = p.year(e.year)
    y.assist_base += e.assist_base_delta
    if record.facts.settlement.med_type == INPATIENT:
        y.inpatient_remaining += e.remaining_delta


def _assistance_paid(p: Person, e: ev.AssistancePaid) -> None:
    record = p.settlements[e.setl_id]
    record.payments.append(e)
    y = p.year(e.year)
    _count(y, e.rule_id, e.counter, e.amount)
    if e.adjustment:
        y.burden -= e.amount


def _hospital_borne(p: Person, e: ev.HospitalBorne) -> None:
    p.settlements[e.setl_id].payments.append(e)
    y = p.year(e.year)
    y.rule_totals[e.rule_id] = y.rule_totals.get(e.rule_id, ZERO) + e.amount


def _count(y: PersonYear, rule_id: str, counter: str, amount: Decimal) -> None:
    y.rule_totals[rule_id] = y.rule_totals.get(rule_id, ZERO) + amount
    if counter == "shared":
        y.assistance_cap_used += amount
    if counter in ("shared", "own"):
        y.own_used[rule_id] = y.own_used.get(rule_id, ZERO) + amount


def _cancelled(p: Person, e: ev.SettlementCancelled) -> None:
    record = p.settlements[e.setl_id]
    record.cancelled = True
    record.cancel_time = e.cancel_time
    facts = record.facts
    y = p.year(e.year)
    y.ci_base -= facts.ci_base_added
    y.assist_base -= facts.assist_base_added + record.assist_base_delta
    if facts.settlement.med_type == INPATIENT:
        y.inpatient_remaining -= facts.remaining + record.remaining_delta
    y.burden -= record.owed()


def _reversed(p: Person, e: ev.PaymentReversed) -> None:
    y = p.year(e.year)
    if e.fund == "critical_illness":
        y.ci_paid -= e.amount
        y.rule_totals[e.rule_id] = y.rule_totals.get(e.rule_id, ZERO) - e.amount
    else:
        _count(y, e.rule_id, e.counter, -e.amount)


def _grant_paid(p: Person, e: ev.TiltedGrantPaid) -> None:
    _count(p.year(e.year), "tilted_grant", "shared", e.granted)


def _warning(p: Person, e: ev.WarningRaised) -> None:
    p.year(e.year).warnings.add(e.code)


def _quota_settled(p: Person, e: ev.QuotaYearSettled) -> None:
    p.year(e.year).quota_settled = True


_HANDLERS = {
    ev.StatusGranted: _granted,
    ev.StatusRevoked: _revoked,
    ev.EnrolmentRecorded: _enrolled,
    ev.HospitalStaySettled: _settled,
    ev.OutpatientVisitSettled: _settled,
    ev.CriticalIllnessPaid: _ci_paid,
    ev.AssistancePaid: _assistance_paid,
    ev.HospitalBorne: _hospital_borne,
    ev.SettlementRedecided: _redecided,
    ev.SettlementCancelled: _cancelled,
    ev.PaymentReversed: _reversed,
    ev.TiltedGrantPaid: _grant_paid,
    ev.WarningRaised: _warning,
    ev.QuotaYearSettled: _quota_settled,
}
