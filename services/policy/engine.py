"""The policy engine: `(state, message) → decision`, pure and synchronous (design.md §3).

Servers, `ledger replay`, audit replay and tests all call `Engine.decide`;
nothing here does I/O or reads a clock.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import msgspec

from events import codes
from events import ledger as ev
from events.limits import bounded, kept
from events.messages import (Enrolment, Inbound, Medins, PsnIdentity, Settlement, SettlementCancel, TiltedGrant,
                             YearClose, encode_message)
from events.results import MedinsResult, Reason
from events.validation import rejected_result
from services.policy.decision import Context, Decision, Rejection, stamp
from services.policy.enrolment import decide_enrolment
from services.policy.grants import decide_tilted_grant
from services.policy.identity import decide_identity
from services.policy.pack import Pack, PackSet
from services.policy.settlement_decision import decide_cancel, decide_settlement
from services.policy.state import Person
from services.policy.year_end import area_prefix, decide_quota_year_end, decide_year_close, is_closed


@dataclass(slots=True)
class Reference:
    """Reference data every decision may read: hospitals and closed years (`ledger.ref.*`)."""
    hospitals: dict[str, ev.Hospital] = field(default_factory=dict)
    closed_years: set[tuple[str, int]] = field(default_factory=set)
    version: int = 0

    def evolve(self, event: ev.LedgerEvent) -> None:
        if isinstance(event, ev.MedinsRecorded):
            self.hospitals[event.fixmedins_code] = ev.Hospital.recorded(event)
        elif isinstance(event, ev.YearClosed):
            self.closed_years.add((area_prefix(event.admdvs), event.year))


class Engine:
    def __init__(self, packs: PackSet):
        self.packs = packs

    def decide(self, message: Inbound, person: Person | None, ref: Reference, ctx: Context,
               key_taken: bool = False) -> Decision:
        """Decide one valid message; a rule that refuses it gives a rejected result and a dead letter.

        `key_taken`: the message's global key (`setl_id`, `grant_id`) is held by another person.
        """
        pack: Pack | None = None
        try:
            pack = self._pack_for(message, person)
            decision = self._dispatch(message, person, ref, pack, key_taken)
        except Rejection as refusal:
            return self.reject(refusal.reason, message.__struct_config__.tag, _fields(message), ctx,
                               encode_message(message))
        decision.events = stamp(decision.events, ctx, pack.id if pack else None, pack.version if pack else None)
        return decision

    def reject(self, reason: Reason, msg_type: str | None, fields: dict, ctx: Context, raw: bytes,
               source: str = "") -> Decision:
        """Bad input is never lost: a rejected result plus a dead letter on `ledger.ref.rejected`.

        The sentence is bounded and an oversized message kept as its first bytes (`events.limits`), so a
        dead letter always fits in a commit.
        """
        reason = bounded(reason)
        event = ev.MessageRejected(code=reason.code, message=reason.message, msg_type=msg_type, raw=kept(raw),
                                   source=source)
        return Decision(stamp([event], ctx, None, None), [rejected_result(reason, msg_type, fields)],
                        ref_kind="rejected")

    def year_end(self, person: Person, close: YearClose, ctx: Context) -> Decision:
        """Year-end payments carry the pack in force on the last day of the closed year. A person whose
        payment a rule refuses (a missing parameter) is a dead letter of the close, to re-drive."""
        try:
            decision = decide_quota_year_end(person, close.admdvs, close.year, self.packs)
        except Rejection as refusal:
            return self.reject(refusal.reason, "year_close", {"admdvs": close.admdvs, "year": close.year}, ctx,
                               encode_message(close))
        pack = self.packs.for_area(close.admdvs, dt.date(close.year, 12, 31))
        decision.events = stamp(decision.events, ctx, pack.id if pack else None, pack.version if pack else None)
        return decision

    def _pack_for(self, message: Inbound, person: Person | None) -> Pack | None:
        if isinstance(message, (Medins, YearClose)):
            return None
        if isinstance(message, SettlementCancel):
            record = person.settlements.get(message.setl_id) if person else None
            return _pack_decided(self.packs, record.facts) if record else None
        if isinstance(message, PsnIdentity):
            pack = self.packs.for_identity(message.admdvs, message.begndate)
            where = f"area {message.admdvs}"
        else:
            on = (message.enddate if isinstance(message, Settlement)
                  else message.enrol_date if isinstance(message, Enrolment)
                  else message.approved_on)  # type: ignore[attr-defined]
            pack = self.packs.for_area(message.admdvs, on)  # type: ignore[attr-defined]
            if pack is None:
                where = f"area {message.admdvs} on {on}"  # type: ignore[attr-defined]
        if pack is None:
            raise Rejection(codes.UNKNOWN_PACK, f"no policy pack is in force for {where}")
        return pack

    def _dispatch(self, message: Inbound, person: Person | None, ref: Reference, pack: Pack | None,
                  key_taken: bool) -> Decision:
        if isinstance(message, Medins):
            return _medins(message)
        if isinstance(message, YearClose):
            return decide_year_close(message, ref.closed_years)
        assert person is not None and pack is not None or isinstance(message, SettlementCancel)
        if isinstance(message, Settlement):
            return decide_settlement(person, message, ref.hospitals.get(message.fixmedins_code), pack,
                                     is_closed(ref.closed_years, message.admdvs, message.enddate.year), key_taken)
        if isinstance(message, SettlementCancel):
            return decide_cancel(person, message, pack)
        if isinstance(message, Enrolment):
            return decide_enrolment(person, message, pack)
        if isinstance(message, PsnIdentity):
            return decide_identity(person, message, pack,
                                   lambda facts: _pack_decided(self.packs, facts),
                                   lambda admdvs, year: is_closed(ref.closed_years, admdvs, year))
        if isinstance(message, TiltedGrant):
            return decide_tilted_grant(person, message, pack, key_taken)
        raise TypeError(f"no decision for {type(message).__name__}")


def _pack_decided(packs: PackSet, facts: ev.SettlementFacts) -> Pack | None:
    """The pack a settlement was decided under: its area's on its service date (policy.md §11)."""
    return packs.for_area(facts.settlement.admdvs, facts.settlement.enddate)


def _medins(m: Medins) -> Decision:
    event = ev.MedinsRecorded(fixmedins_code=m.fixmedins_code, fixmedins_name=m.fixmedins_name, admdvs=m.admdvs,
                              designated=m.designated, in_province=m.in_province, ooc_class=m.ooc_class,
                              serious_disease_designated=m.serious_disease_designated)
    return Decision([event], [MedinsResult(fixmedins_code=m.fixmedins_code, result="recorded")], ref_kind="medins")


def _fields(message: Inbound) -> dict:
    return {k: v for k, v in msgspec.structs.asdict(message).items() if isinstance(v, (str, int))}
