"""资助参保: the premium subsidy decided on enrolment (policy.md §3)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from events import codes
from events import ledger as ev
from events.messages import EMPLOYEES, RESIDENTS, Enrolment
from events.money import ZERO, money
from events.results import Reason, SubsidyResult, as_duplicate
from services.policy.decision import Decision, Rejection
from services.policy.pack import MissingParameter, Pack, SubsidyRule
from services.policy.state import Person

MINOR_BELOW, ELDERLY_FROM = 18, 60


def age_on_new_year(birth: dt.date, year: int) -> int:
    """policy.md §11: minors and the elderly are told by age on 1 January of the policy year."""
    return year - birth.year - (1 if (birth.month, birth.day) > (1, 1) else 0)


def subsidy_amount(rule: SubsidyRule, std: Decimal, year: int, birth: dt.date, pack_id: str = "") -> Decimal | None:
    """What `rule` gives, or None where it does not apply (years, age). Never more than std (§3)."""
    if rule.years and not rule.years[0] <= year <= rule.years[1]:
        return None
    if rule.minor_only and age_on_new_year(birth, year) >= MINOR_BELOW:
        return None
    if rule.fixed is not None:
        amount = rule.fixed
    else:
        ratio = rule.ratio_by_year.get(str(year), rule.ratio)
        if ratio is None:               # a year inside the rule's span the pack has no ratio for (policy.md §12)
            raise MissingParameter(f"subsidy.{rule.rule_id}.ratio_by_year", year, pack_id, rule.clause)
        amount = ratio * std
    if rule.minimum is not None:
        amount = max(amount, rule.minimum)
    return money(min(amount, std))


def decide_enrolment(person: Person, msg: Enrolment, pack: Pack) -> Decision:
    known = person.subsidies.get(msg.year)
    if known is not None:
        return Decision(results=[as_duplicate(known)], psn_no=msg.psn_no)
    valid = person.statuses_on(msg.enrol_date)
    if not msg.in_normal_period and not valid & set(pack.green_channel_statuses):
        raise Rejection(codes.OUTSIDE_GREEN_CHANNEL,
                        f"enrolment outside the normal contribution period is open only to assistance targets "
                        f"({pack.green_channel_clause}); this person holds no such status on {msg.enrol_date}")
    best: tuple[Decimal, str, SubsidyRule] | None = None
    if msg.insutype == RESIDENTS:
        for status in (s for s in pack.statuses if s in valid):
            for rule in pack.subsidy:
                if status in rule.statuses:
                    amount = subsidy_amount(rule, msg.contribution_std, msg.year, msg.brdy, pack.id)
                    if amount is not None and (best is None or amount > best[0]):
                        best = (amount, status, rule)
    if best is None:
        why = ("employees' insurance (310) gets no premium subsidy from this ledger" if msg.insutype == EMPLOYEES
               else "no status with a premium subsidy is valid on the enrolment date")
        subsidy, status, rule = ZERO, None, None
    else:
        subsidy, status, rule = best
        why = f"status {status}: {rule.clause}" if subsidy else f"status {status} carries no subsidy: {rule.clause}"
    fund = rule.fund if rule and subsidy else None
    events = [
        ev.EnrolmentRecorded(psn_no=msg.psn_no, admdvs=msg.admdvs, year=msg.year, insutype=msg.insutype,
                             brdy=msg.brdy, contribution_std=msg.contribution_std, enrol_date=msg.enrol_date,
                             in_normal_period=msg.in_normal_period),
        ev.PremiumSubsidyGranted(psn_no=msg.psn_no, year=msg.year, status=status,
                                 contribution_std=msg.contribution_std, subsidy=subsidy, fund=fund,
                                 rule_id=rule.rule_id if rule else None, clause=rule.clause if rule else None,
                                 reason=why),
    ]
    result = SubsidyResult(psn_no=msg.psn_no, year=msg.year, result="settled", pack=pack.id, status=status,
                           subsidy=subsidy, fund=fund, rule_id=rule.rule_id if rule else None,
                           clause=rule.clause if rule else None,
                           reason=None if subsidy else Reason("no_subsidy", why))
    return Decision(events, [result], psn_no=msg.psn_no)
