"""What an audit reports: each payment that differs between the ledger and the rules, by rule and clause.

Lines are compared by (settlement, fund, rule_id): a rule that paid 100 and
now gives 80 is one difference of -20 citing that rule's clause; a rule that
did not pay and now does (or the reverse) is a difference too. Settlement
totals (`hifmi_pay`, `maf_pay`, `hosp_part_amt`, `psn_part_amt`) and the
status applied are compared beside the lines; subsidies and tilted grants by
their amount; warnings by code.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import msgspec

from events import ledger as ev
from events.money import ZERO

TOTALS = ("hifmi_pay", "maf_pay", "hosp_part_amt", "psn_part_amt")


class Difference(msgspec.Struct, frozen=True, omit_defaults=True):
    person_key: str
    seq: int                           # stream sequence of the stored decision
    kind: str                          # line | adjustment | total | status | subsidy | grant | warning | not_recomputed
    key: str                           # setl_id, grant_id or year
    paid: Decimal | None = None
    recomputed: Decimal | None = None
    delta: Decimal | None = None
    field: str | None = None
    fund: str | None = None
    rule_id: str | None = None
    clause: str | None = None
    pack: str | None = None
    pack_version: str | None = None
    note: str | None = None


class Scope(msgspec.Struct, frozen=True, omit_defaults=True):
    """Which decisions an audit reports on (all of a person's are replayed regardless)."""
    psn_no: str | None = None
    area: str | None = None            # admdvs prefix
    date_from: dt.date | None = None   # service date (discharge, enrolment, approval), inclusive
    date_to: dt.date | None = None

    def covers(self, commit: ev.Commit, facts: dict[str, ev.SettlementFacts]) -> bool:
        area, day = _where(commit, facts)
        if self.area and not (area or "").startswith(self.area):
            return False
        if day is None:
            return self.date_from is None and self.date_to is None
        return (self.date_from is None or self.date_from <= day) and (self.date_to is None or day <= self.date_to)


def _where(commit: ev.Commit, facts: dict[str, ev.SettlementFacts]) -> tuple[str | None, dt.date | None]:
    first = commit.events[0]
    if isinstance(first, ev.SettlementFacts):
        return first.settlement.admdvs, first.settlement.enddate
    if isinstance(first, ev.EnrolmentRecorded):
        return first.admdvs, first.enrol_date
    if isinstance(first, ev.TiltedGrantPaid):
        return first.admdvs, first.approved_on
    setl = next((facts.get(e.setl_id) for e in commit.events if getattr(e, "setl_id", None)), None)
    if setl is not None:
        return setl.settlement.admdvs, setl.settlement.enddate
    return getattr(first, "admdvs", None), None


_FUND = {ev.CriticalIllnessPaid: "critical_illness", ev.AssistancePaid: "assistance", ev.HospitalBorne: "hospital"}


def _lines(events: list[ev.LedgerEvent]) -> dict[tuple[str, str, str], tuple[Decimal, str]]:
    out: dict[tuple[str, str, str], tuple[Decimal, str]] = {}
    for e in events:
        fund = _FUND.get(type(e))
        if fund is None:
            continue
        key = (e.setl_id, fund, e.rule_id)  # type: ignore[attr-defined]
        amount, _ = out.get(key, (ZERO, ""))
        out[key] = (amount + e.amount, e.clause)  # type: ignore[attr-defined]
    return out


def _amounts(events: list[ev.LedgerEvent], kind: type, key: str, value: str) -> dict[str, tuple[Decimal, Any]]:
    return {str(getattr(e, key)): (getattr(e, value), e) for e in events if isinstance(e, kind)}


def compare_commit(person_key: str, seq: int, stored: ev.Commit, events: list[ev.LedgerEvent], results: list,
                   missing: str | None, totals: Any) -> list[Difference]:
    first = stored.events[0]
    base = {"person_key": person_key, "seq": seq, "pack": first.pack, "pack_version": first.pack_version}
    key = getattr(first, "setl_id", None) or getattr(first, "grant_id", None) or str(getattr(first, "year", ""))
    if missing:
        return [Difference(**base, kind="not_recomputed", key=key, note=missing)]
    rejected = next((r for r in results if getattr(r, "result", None) == "rejected"), None)
    if rejected is not None:
        return [Difference(**base, kind="not_recomputed", key=key,
                           note=f"the rules now reject it: {rejected.reason.code}: {rejected.reason.message}")]
    out: list[Difference] = []
    was, now = _lines(stored.events), _lines(events)
    kind = "line" if isinstance(first, ev.SettlementFacts) else "adjustment"
    for line in sorted(set(was) | set(now)):
        paid, clause = was.get(line, (ZERO, ""))
        again, clause_now = now.get(line, (ZERO, ""))
        _add(totals, line[1], paid, again)
        if paid != again:
            out.append(Difference(**base, kind=kind, key=line[0], fund=line[1], rule_id=line[2],
                                  clause=clause or clause_now, paid=paid, recomputed=again, delta=again - paid))
    if isinstance(first, ev.SettlementFacts):
        redo = next((e for e in events if isinstance(e, ev.SettlementFacts)), None)
        if redo is not None:
            out.extend(Difference(**base, kind="total", key=first.setl_id, field=name, paid=getattr(first, name),
                                  recomputed=getattr(redo, name), delta=getattr(redo, name) - getattr(first, name))
                       for name in TOTALS if getattr(first, name) != getattr(redo, name))
            if first.status != redo.status:
                out.append(Difference(**base, kind="status", key=first.setl_id, field="status",
                                      note=f"applied {first.status!r}, the rules now give {redo.status!r}"))
        was_w = _amounts(stored.events, ev.WarningRaised, "code", "figure")
        now_w = _amounts(events, ev.WarningRaised, "code", "figure")
        for code in sorted(set(was_w) ^ set(now_w)):
            e = (was_w.get(code) or now_w[code])[1]
            out.append(Difference(**base, kind="warning", key=first.setl_id, rule_id=code, clause=e.clause,
                                  note="raised then, not now" if code in was_w else "not raised then, raised now"))
    for kind_, cls, k, v in (("subsidy", ev.PremiumSubsidyGranted, "year", "subsidy"),
                             ("grant", ev.TiltedGrantPaid, "grant_id", "granted")):
        was_a, now_a = _amounts(stored.events, cls, k, v), _amounts(events, cls, k, v)
        for name in sorted(set(was_a) | set(now_a)):
            paid = was_a.get(name, (ZERO, None))[0]
            again = now_a.get(name, (ZERO, None))[0]
            event = (was_a.get(name) or now_a[name])[1]
            _add(totals, kind_, paid, again)
            if paid != again:
                out.append(Difference(**base, kind=kind_, key=name, paid=paid, recomputed=again, delta=again - paid,
                                      rule_id=getattr(event, "rule_id", None), clause=event.clause))
    return out


def _add(totals: Any, fund: str, paid: Decimal, again: Decimal) -> None:
    totals.paid[fund] = totals.paid.get(fund, ZERO) + paid
    totals.recomputed[fund] = totals.recomputed.get(fund, ZERO) + again
