"""Year end: close an area's policy year and pay quota-managed chronic outpatient once (临汾 二(五))."""
from __future__ import annotations

from events import ledger as ev
from events.messages import YearClose
from events.money import ZERO
from events.results import SettlementAdjustment, YearCloseResult
from services.policy.decision import Decision
from services.policy.pack import PackSet
from services.policy.settlement_decision import payment_event
from services.policy.benefits import evaluate
from services.policy.decided import paid_at_once
from services.policy.shown import binding_cap, result_line
from services.policy.state import Person, PersonYear

REASON = "year end: quota-managed chronic outpatient paid once on the year's visits (临汾 二(五) 限额管理的年底一次性救助)"


def area_prefix(admdvs: str) -> str:
    """A 6-digit code names its sub-areas by its non-zero head: 141000 (Linfen city) covers 1410xx."""
    head = admdvs
    while len(head) > 2 and head.endswith("00"):
        head = head[:-2]
    return head


def is_closed(closed: set[tuple[str, int]], admdvs: str, year: int) -> bool:
    """Whether a year_close of `admdvs` (or of an area containing it) for `year` was recorded."""
    return bool(closed) and any(year == y and admdvs.startswith(prefix) for prefix, y in closed)


def decide_year_close(msg: YearClose, closed: set[tuple[str, int]]) -> Decision:
    key = (area_prefix(msg.admdvs), msg.year)
    if key in closed:
        return Decision(results=[YearCloseResult(admdvs=msg.admdvs, year=msg.year, result="duplicate")])
    return Decision([ev.YearClosed(admdvs=msg.admdvs, year=msg.year)],
                    [YearCloseResult(admdvs=msg.admdvs, year=msg.year, result="closed")], ref_kind="year_close")


def has_quota_visits(person: Person, prefix: str, year: int) -> bool:
    """Whether the person has a quota-managed visit of `year` in the area `prefix` (`area_prefix`) names."""
    return any(r.facts.year == year and r.quota_base > 0 and r.facts.settlement.admdvs.startswith(prefix)
               for r in person.settlements.values())


def has_quota_due(person: Person, admdvs: str, year: int) -> bool:
    prefix = area_prefix(admdvs)
    y = person.years.get(year)
    return (y is not None and not y.quota_settled
            and any(r.quota_base > ZERO and not r.cancelled and r.facts.year == year
                    and r.facts.settlement.admdvs.startswith(prefix) for r in person.settlements.values()))


def decide_quota_year_end(person: Person, admdvs: str, year: int, packs: PackSet) -> Decision:
    """Each quota visit is paid as its own adjustment, so a later cancellation can take it back."""
    y = person.years.get(year) or PersonYear(year)
    used, own = y.assistance_cap_used, dict(y.own_used)
    events: list[ev.LedgerEvent] = []
    results: list[SettlementAdjustment] = []
    prefix = area_prefix(admdvs)
    for record in person.settlements.values():
        facts = record.facts
        visit = facts.settlement
        if record.cancelled or facts.year != year or record.quota_base <= ZERO or not visit.admdvs.startswith(prefix):
            continue
        pack = packs.for_area(visit.admdvs, visit.enddate)
        if pack is None:
            continue
        state = PersonYear(year, assistance_cap_used=used, own_used=own)
        valid = person.statuses_on(visit.enddate)
        outcomes = [evaluate(s, person, paid_at_once(visit), facts.hospital, pack, state, facts.hifmi_pay)
                    for s in pack.statuses if s in valid]
        best = max(outcomes, key=lambda o: o.maf_pay, default=None)
        if best is None or best.maf_pay <= ZERO:
            continue
        lines = [l for l in best.lines if l.fund == "assistance"]
        for line in lines:
            events.append(payment_event(facts.setl_id, facts.psn_no, year, line, adjustment=REASON))
            if line.counter == "shared":
                used += line.amount
            if line.counter in ("shared", "own"):
                own[line.rule_id] = own.get(line.rule_id, ZERO) + line.amount
        results.append(SettlementAdjustment(
            setl_id=facts.setl_id, psn_no=facts.psn_no, year=year, pack=pack.id, reason=REASON,
            maf_pay=best.maf_pay, lines=[result_line("assistance", l.rule_id, l.clause, l.base, l.ratio, l.amount)
                                         for l in lines],
            cap=binding_cap(pack, best.status, used, own)))
    events.append(ev.QuotaYearSettled(psn_no=person.psn_no, admdvs=admdvs, year=year))
    return Decision(events, results, psn_no=person.psn_no)
