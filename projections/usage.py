"""Person-year usage: the counters a supervisor asks about, folded from the same events as
`services.policy.state.PersonYear` (大病 base and paid, assistance base, shared cap used, per-rule
totals) plus the inpatient/outpatient split and the status applied.
"""
from __future__ import annotations

from decimal import Decimal

from events import ledger as ev
from events.messages import INPATIENT
from projections.claims import ClaimsState
from projections.model import Message, Op, Table, Upsert

_SPLIT = ("count", "medfee", "hifmi", "maf", "hosp", "psn")
PERSON_YEAR = Table("person_year", ("person_key", "year"), (
    "person_key", "year", "admdvs", "insutype", "pack", "pack_version", "status_applied", "subsidy", "ci_base",
    "ci_deductible", "ci_paid", "assist_base", "cap_limit", "cap_used", "grants_granted", "grants_refused",
    "settlements", "cancelled", "warnings",
    *(f"{kind}_{what}" for kind in ("inpatient", "outpatient") for what in _SPLIT),
    "last_seq", "updated_at"), frozenset({
        "subsidy", "ci_base", "ci_paid", "assist_base", "cap_used", "grants_granted", "grants_refused",
        "settlements", "cancelled", "warnings",
        *(f"{kind}_{what}" for kind in ("inpatient", "outpatient") for what in _SPLIT)}))
RULE_TOTAL = Table("person_year_rule", ("person_key", "year", "rule_id"),
                   ("person_key", "year", "rule_id", "fund", "amount", "lines"), frozenset({"amount", "lines"}))


def _kind(inpatient: bool) -> str:
    return "inpatient" if inpatient else "outpatient"


def fold_usage(state: ClaimsState, msg: Message) -> list[Op]:
    """Run after `fold_claims` on the same message: it reads the settlement index that fold keeps."""
    if msg.person_key is None:
        return []
    pk = msg.person_key
    years: dict[int, Upsert] = {}
    ops: list[Op] = []

    def year(y: int, e: ev.LedgerEvent) -> Upsert:
        found = years.get(y)
        if found is None:
            found = years[y] = Upsert(PERSON_YEAR, (pk, y))
        found.set.update(last_seq=msg.seq, updated_at=e.recorded_at)
        return found

    def rule(y: int, rule_id: str, fund: str, amount: Decimal) -> None:
        ops.append(Upsert(RULE_TOTAL, (pk, y, rule_id), add={"amount": amount, "lines": 1 if amount >= 0 else -1},
                          set={"fund": fund}))

    def add(u: Upsert, **amounts) -> None:
        for column, value in amounts.items():
            u.add[column] = u.add.get(column, 0) + value

    for e in msg.events:
        if isinstance(e, ev.SettlementFacts):
            u, sent = year(e.year, e), e.settlement
            k = _kind(sent.med_type == INPATIENT)
            u.set.update(admdvs=sent.admdvs, insutype=sent.insutype, pack=e.pack, pack_version=e.pack_version,
                         status_applied=e.status)
            if e.ci_deductible is not None:      # the deductible the decision used (policy.md §4)
                u.set["ci_deductible"] = e.ci_deductible
            add(u, settlements=1, ci_base=e.ci_base_added, assist_base=e.assist_base_added,
                **{f"{k}_count": 1, f"{k}_medfee": sent.medfee_sumamt, f"{k}_hifmi": e.hifmi_pay,
                   f"{k}_maf": e.maf_pay, f"{k}_hosp": e.hosp_part_amt, f"{k}_psn": e.psn_part_amt})
        elif isinstance(e, ev.CriticalIllnessPaid):
            u = year(e.year, e)
            u.set["ci_deductible"] = e.deductible
            add(u, ci_paid=e.amount)
            rule(e.year, e.rule_id, "critical_illness", e.amount)
            if e.adjustment:
                k = _kind(state.meta(pk, e.setl_id).inpatient)
                add(u, **{f"{k}_hifmi": e.amount, f"{k}_psn": -e.amount})
        elif isinstance(e, ev.SettlementRedecided):
            add(year(e.year, e), assist_base=e.assist_base_delta)
        elif isinstance(e, ev.AssistancePaid):
            u = year(e.year, e)
            rule(e.year, e.rule_id, "assistance", e.amount)
            if e.counter == "shared":
                add(u, cap_used=e.amount)
                if e.cap_limit is not None:
                    u.set["cap_limit"] = e.cap_limit
            if e.adjustment:
                k = _kind(state.meta(pk, e.setl_id).inpatient)
                add(u, **{f"{k}_maf": e.amount, f"{k}_psn": -e.amount})
        elif isinstance(e, ev.HospitalBorne):
            year(e.year, e)
            rule(e.year, e.rule_id, "hospital", e.amount)
        elif isinstance(e, ev.SettlementCancelled):
            meta = state.meta(pk, e.setl_id)
            k = _kind(meta.inpatient)
            add(year(e.year, e), cancelled=1, ci_base=-meta.ci_base_added,
                assist_base=-(meta.assist_base_added + meta.assist_base_delta),
                **{f"{k}_count": -1, f"{k}_medfee": -meta.medfee_sumamt, f"{k}_psn": -meta.owed})
        elif isinstance(e, ev.PaymentReversed):
            u = year(e.year, e)
            k = _kind(state.meta(pk, e.setl_id).inpatient)
            column = {"critical_illness": "hifmi", "assistance": "maf", "hospital": "hosp"}.get(e.fund, "maf")
            add(u, **{f"{k}_{column}": -e.amount})
            if e.fund == "critical_illness":
                add(u, ci_paid=-e.amount)
            elif e.counter == "shared":
                add(u, cap_used=-e.amount)
            rule(e.year, e.rule_id, e.fund, -e.amount)
        elif isinstance(e, ev.EnrolmentRecorded):
            year(e.year, e).set.update(admdvs=e.admdvs, insutype=e.insutype, pack=e.pack,
                                       pack_version=e.pack_version)
        elif isinstance(e, ev.PremiumSubsidyGranted):
            add(year(e.year, e), subsidy=e.subsidy)
        elif isinstance(e, ev.TiltedGrantPaid):
            u = year(e.year, e)
            add(u, grants_granted=e.granted, grants_refused=e.refused, cap_used=e.granted)
            u.set["cap_limit"] = e.cap_limit
            rule(e.year, "tilted_grant", "assistance", e.granted)
        elif isinstance(e, ev.WarningRaised):
            add(year(e.year, e), warnings=1)
    return [*years.values(), *ops]
