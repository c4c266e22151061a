"""The claims projection for rebuilds: the same rows as `fold_claims` + `fold_usage`, built from lean events.

Inserted rows (settlements, lines, warnings) become COPY text straight from the
stored strings; only the figures that are summed (person-year counters, rule
totals, fund flows, what a settlement was paid later) become Decimals, merged
per row within the batch. Fund flows, a few hundred rows shared by every
person, are kept for the whole load and written once at its end, so workers
folding different persons never wait on each other's rows.

Both folds must stay one meaning: tests/projections/test_lean.py compares their
tables on sample traffic. A change to claims.py or usage.py belongs here too.
Batches are `lean_rows.Rows`.
"""
from __future__ import annotations

from decimal import Decimal

from events import ledger as ev
from events.messages import INPATIENT
from projections import catalog
from projections.claims import FUND_FLOW, LINE, SETTLEMENT, WARNING, ClaimsState, SetlMeta
from projections.decode import LeanDecoder
from projections.lean_rows import AT, CANCEL, FACTS, SPLIT, Rows, Year
from projections.model import Upsert
from projections.sql import csv_line

_LINE = ("setl_id", "year", "rule_id", "clause", "amount", "pack", "pack_version")
NEEDS = {
    ev.LedgerEvent: ("event_id", "recorded_at", "pack", "pack_version"),
    ev.SettlementFacts: (
        "setl_id", "year", "status", "oop", "remaining", "ci_base_added", "assist_base_added", "hifmi_pay",
        "maf_pay", "hosp_part_amt", "psn_part_amt", "ci_deductible",
        *(f"settlement.{name}" for name in (
            "mdtrt_id", "admdvs", "med_type", "insutype", "fixmedins_code", "begndate", "enddate", "setl_time",
            "dise_codg", "medfee_sumamt", "fulamt_ownpay_amt", "inscp_scp_amt", "hifp_pay", "oth_pay"))),
    ev.CriticalIllnessPaid: (*_LINE, "base", "ratio", "deductible", "cumulative_before", "cap_limit", "paid_before",
                             "adjustment"),
    ev.AssistancePaid: (*_LINE, "base", "ratio", "threshold", "cumulative_before", "formula_amount", "counter",
                        "cap_limit", "cap_used_before", "adjustment"),
    ev.HospitalBorne: (*_LINE, "base", "ratio"),
    ev.PaymentReversed: (*_LINE, "fund", "counter"),
    ev.SettlementRedecided: ("setl_id", "year", "status", "assist_base_delta"),
    ev.SettlementCancelled: ("setl_id", "year", "cancel_time"),
    ev.WarningRaised: ("year", "code", "clause", "figure", "threshold", "setl_id"),
    ev.EnrolmentRecorded: ("admdvs", "year", "insutype", "enrol_date"),
    ev.PremiumSubsidyGranted: ("year", "subsidy", "fund"),
    ev.TiltedGrantPaid: ("admdvs", "year", "approved_on", "granted", "refused", "cap_limit"),
}
_REVERSED_COLUMN = {"critical_illness": "hifmi", "assistance": "maf", "hospital": "hosp"}


def _month(when: str | None) -> str | None:
    """The month of an ISO date or time as it was written (its own offset), like `claims.month_of`."""
    return None if when is None else when[:7] + "-01"


def _negative(amount: str) -> str:
    return amount[1:] if amount.startswith("-") else "-" + amount


def _add(u: Upsert, column: str, value) -> None:
    u.add[column] = u.add.get(column, 0) + value


class LeanClaims:
    """Folds lean events of one person's messages into `Rows`; `state` is the settlement index."""

    def __init__(self, decoders: list[LeanDecoder]):
        self.state = ClaimsState()
        self.flows: dict[tuple, list] = {}         # (admdvs, fund, month) → [amount, lines], the whole load
        self.evicted = False
        handlers = {ev.HospitalStaySettled: self._facts, ev.OutpatientVisitSettled: self._facts,
                    ev.CriticalIllnessPaid: self._ci_paid, ev.AssistancePaid: self._assistance,
                    ev.HospitalBorne: self._hospital, ev.SettlementRedecided: self._redecided,
                    ev.SettlementCancelled: self._cancelled, ev.PaymentReversed: self._reversed,
                    ev.WarningRaised: self._warning, ev.EnrolmentRecorded: self._enrolled,
                    ev.PremiumSubsidyGranted: self._subsidy, ev.TiltedGrantPaid: self._grant}
        self._on = {d.by_full[full]: handler for d in decoders for full, handler in handlers.items()}
        self._facts_types = {d.by_full[c] for d in decoders for c in (ev.HospitalStaySettled,
                                                                       ev.OutpatientVisitSettled)}
        self._later = {d.by_full[c] for d in decoders for c in catalog.LATER}

    def missing(self, msgs: list[tuple[str, list]]) -> list[tuple[str, str]]:
        """Settlements this batch refers to that the bounded index no longer holds (see catalog). Until
        the index first drops some, every settlement folded is in it: a miss is then the fold's error."""
        self.evicted = catalog.evict_oldest(self.state, catalog.MAX_INDEX) or self.evicted
        if not self.evicted:
            return []
        known, later = self.state.settlements, self._later
        gone = {(pk, e.setl_id) for pk, events in msgs for e in events
                if type(e) in later and e.setl_id and (pk, e.setl_id) not in known}
        if gone:                                # unless this very batch creates them
            gone -= {(pk, e.setl_id) for pk, events in msgs for e in events if type(e) in self._facts_types}
        return list(gone)

    def fold(self, rows: Rows, seq: int, pk: str, events: list, escape: bool = False) -> None:
        self.rows, self.seq, self.pk, self.idx, self.escape = rows, seq, pk, 0, escape
        rows.escape = rows.escape or escape
        first = events[0]
        self.setl_time = first.settlement.setl_time if type(first) in self._facts_types else first.recorded_at
        self.enrol: tuple | None = None
        self.cancel_time: str | None = None
        self.cancels: list[tuple[Year, SetlMeta]] = []
        on = self._on
        for idx, e in enumerate(events):
            handler = on.get(type(e))
            if handler is not None:
                self.idx = idx
                handler(e)
        for y, meta in self.cancels:     # as fold_usage: after the whole decision moved the settlement's figures
            add = y.add
            for i, value in zip(CANCEL[meta.inpatient], (1, -meta.ci_base_added, -(
                    meta.assist_base_added + meta.assist_base_delta), -1, -meta.medfee_sumamt, -meta.owed)):
                add[i] += value

    # --- helpers: one person-year, one rule total, one fund flow, one line ---------------
    def _year(self, year: int, e) -> Year:
        key = (self.pk, year)
        y = self.rows.years.get(key)
        if y is None:
            y = self.rows.years[key] = Year()
        y.set["last_seq"] = self.seq
        y.set["updated_at"] = e.recorded_at
        return y

    def _rule(self, year: int, rule_id: str, fund: str, amount: Decimal) -> None:
        key = (self.pk, year, rule_id)
        found = self.rows.rules.get(key)
        if found is None:
            self.rows.rules[key] = [amount, 1 if amount >= 0 else -1, fund]
        else:
            found[0] += amount
            found[1] += 1 if amount >= 0 else -1
            found[2] = fund

    def _flow(self, admdvs: str, fund: str | None, when: str | None, amount: Decimal) -> None:
        key = (admdvs, fund or "", _month(when))
        found = self.flows.get(key)
        if found is None:
            self.flows[key] = [amount, 1]
        else:
            found[0] += amount
            found[1] += 1

    def _line(self, e, kind: str, fund: str, amount: str, base=None, ratio=None, threshold=None, cumulative=None,
              formula=None, counter=None, cap_limit=None, cap_used=None, adjustment=None) -> None:
        self.rows.copy[LINE].append(csv_line((
            self.seq, self.idx, e.setl_id, self.pk, kind, fund, e.rule_id, e.clause, base, ratio, threshold,
            cumulative, formula, counter, cap_limit, cap_used, amount, adjustment, e.pack, e.pack_version,
            e.event_id, e.recorded_at), self.escape))

    def _meta(self, setl_id: str) -> SetlMeta:
        return self.state.meta(self.pk, setl_id)

    # --- one handler per event type (claims.fold_claims, then usage.fold_usage) -----------
    def _facts(self, e) -> None:
        sent = e.settlement
        inpatient = sent.med_type == INPATIENT
        ci_base, assist_base = Decimal(e.ci_base_added), Decimal(e.assist_base_added)
        medfee, psn = Decimal(sent.medfee_sumamt), Decimal(e.psn_part_amt)
        self.state.settlements[(self.pk, e.setl_id)] = SetlMeta(sent.admdvs, inpatient, ci_base, assist_base, medfee,
                                                                psn, Decimal(0))
        self.rows.copy[SETTLEMENT].append(csv_line((
            e.setl_id, self.pk, sent.mdtrt_id, sent.admdvs, e.year, sent.med_type, inpatient, sent.insutype,
            sent.fixmedins_code, sent.begndate, sent.enddate, sent.setl_time, sent.dise_codg, e.pack, e.pack_version,
            e.status, sent.medfee_sumamt, sent.fulamt_ownpay_amt, sent.inscp_scp_amt, sent.hifp_pay, sent.oth_pay,
            e.oop, e.remaining, e.ci_base_added, e.assist_base_added, e.hifmi_pay, e.maf_pay, e.hosp_part_amt,
            e.psn_part_amt, "0", False, None, self.seq, e.event_id, e.recorded_at, "0", "0", None), self.escape))
        y = self._year(e.year, e)
        y.set.update(admdvs=sent.admdvs, insutype=sent.insutype, pack=e.pack, pack_version=e.pack_version,
                     status_applied=e.status)
        if e.ci_deductible is not None:        # the deductible the decision used (policy.md §4)
            y.set["ci_deductible"] = e.ci_deductible
        add = y.add
        for i, value in zip(FACTS[inpatient], (1, ci_base, assist_base, 1, medfee, Decimal(e.hifmi_pay),
                                                Decimal(e.maf_pay), Decimal(e.hosp_part_amt), psn)):
            add[i] += value

    def _ci_paid(self, e) -> None:
        meta = self._meta(e.setl_id)
        amount = Decimal(e.amount)
        self._line(e, "adjustment" if e.adjustment else "payment", "critical_illness", e.amount, e.base, e.ratio,
                   e.deductible, e.cumulative_before, cap_limit=e.cap_limit, cap_used=e.paid_before,
                   adjustment=e.adjustment)
        y = self._year(e.year, e)
        y.set["ci_deductible"] = e.deductible
        y.add[AT["ci_paid"]] += amount
        self._rule(e.year, e.rule_id, "critical_illness", amount)
        if e.adjustment:
            self._adjusted(meta, y, e.setl_id, "hifmi", amount)
        self._flow(meta.admdvs, "critical_illness", e.recorded_at if e.adjustment else self.setl_time, amount)

    def _assistance(self, e) -> None:
        meta = self._meta(e.setl_id)
        amount = Decimal(e.amount)
        self._line(e, "adjustment" if e.adjustment else "payment", "assistance", e.amount, e.base, e.ratio,
                   e.threshold, e.cumulative_before, e.formula_amount, e.counter, e.cap_limit, e.cap_used_before,
                   e.adjustment)
        y = self._year(e.year, e)
        self._rule(e.year, e.rule_id, "assistance", amount)
        if e.counter == "shared":
            y.add[AT["cap_used"]] += amount
            if e.cap_limit is not None:
                y.set["cap_limit"] = e.cap_limit
        if e.adjustment:
            self._adjusted(meta, y, e.setl_id, "maf", amount)
        self._flow(meta.admdvs, "assistance", e.recorded_at if e.adjustment else self.setl_time, amount)

    def _adjusted(self, meta: SetlMeta, y: Year, setl_id: str, fund: str, amount: Decimal) -> None:
        """A payment made after its settlement (policy.md §12) by `fund` ("hifmi" 大病, "maf" assistance):
        the settlement's `<fund>_adjusted`, and the person-year's share moved from the person to the fund."""
        column = f"{fund}_adjusted"
        setattr(meta, column, getattr(meta, column) + amount)
        _add(self.rows.upsert(SETTLEMENT, (setl_id, self.pk)), column, amount)
        split = SPLIT[meta.inpatient]
        y.add[AT[split[fund]]] += amount
        y.add[AT[split["psn"]]] -= amount

    def _hospital(self, e) -> None:
        meta = self._meta(e.setl_id)
        amount = Decimal(e.amount)
        self._line(e, "payment", "hospital", e.amount, e.base, e.ratio)
        self._year(e.year, e)
        self._rule(e.year, e.rule_id, "hospital", amount)
        self._flow(meta.admdvs, "hospital", self.setl_time, amount)

    def _redecided(self, e) -> None:
        meta = self._meta(e.setl_id)
        delta = Decimal(e.assist_base_delta)
        meta.assist_base_delta += delta
        u = self.rows.upsert(SETTLEMENT, (e.setl_id, self.pk))
        _add(u, "assist_base_delta", delta)
        u.set["redecided_status"] = e.status
        self._year(e.year, e).add[AT["assist_base"]] += delta

    def _cancelled(self, e) -> None:
        meta = self._meta(e.setl_id)
        self.cancel_time = e.cancel_time
        self.rows.upsert(SETTLEMENT, (e.setl_id, self.pk)).set.update(cancelled=True, cancel_time=e.cancel_time)
        self.cancels.append((self._year(e.year, e), meta))

    def _reversed(self, e) -> None:
        meta = self._meta(e.setl_id)
        amount = -Decimal(e.amount)
        self._line(e, "reversal", e.fund, _negative(e.amount), counter=e.counter)
        self._flow(meta.admdvs, e.fund, self.cancel_time or e.recorded_at, amount)
        add = self._year(e.year, e).add
        add[AT[SPLIT[meta.inpatient][_REVERSED_COLUMN.get(e.fund, "maf")]]] += amount
        if e.fund == "critical_illness":
            add[AT["ci_paid"]] += amount
        elif e.counter == "shared":
            add[AT["cap_used"]] += amount
        self._rule(e.year, e.rule_id, e.fund, amount)

    def _warning(self, e) -> None:
        admdvs = self._meta(e.setl_id).admdvs if e.setl_id else None
        self.rows.copy[WARNING].append(csv_line((
            self.seq, self.idx, self.pk, admdvs, e.year, e.code, e.clause, e.figure, e.threshold, e.setl_id,
            e.event_id, e.recorded_at), self.escape))
        self._year(e.year, e).add[AT["warnings"]] += 1

    def _enrolled(self, e) -> None:
        self.enrol = (e.admdvs, e.enrol_date)
        self._year(e.year, e).set.update(admdvs=e.admdvs, insutype=e.insutype, pack=e.pack,
                                         pack_version=e.pack_version)

    def _subsidy(self, e) -> None:
        subsidy = Decimal(e.subsidy)
        if subsidy and self.enrol and self.enrol[0]:
            self._flow(self.enrol[0], e.fund, self.enrol[1], subsidy)
        self._year(e.year, e).add[AT["subsidy"]] += subsidy

    def _grant(self, e) -> None:
        granted = Decimal(e.granted)
        if granted:
            self._flow(e.admdvs, "assistance", e.approved_on, granted)
        y = self._year(e.year, e)
        y.add[AT["grants_granted"]] += granted
        y.add[AT["grants_refused"]] += Decimal(e.refused)
        y.add[AT["cap_used"]] += granted
        y.set["cap_limit"] = e.cap_limit
        self._rule(e.year, "tilted_grant", "assistance", granted)


def flow_upserts(flows: dict[tuple, list]) -> list[Upsert]:
    """The fund flows of a whole load, in key order (workers adding to the same rows lock them alike)."""
    return [Upsert(FUND_FLOW, key, add={"amount": amount, "lines": lines})
            for key, (amount, lines) in sorted(flows.items(), key=lambda kv: tuple(map(str, kv[0])))]


