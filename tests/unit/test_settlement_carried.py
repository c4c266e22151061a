"""Adding a field to a settlement touches one struct, `events.messages.Settlement` (ADR 0017).

Every field of it, whatever it is, is kept by the facts exactly as the platform sent it, survives the
stored bytes, and reaches each re-decision unchanged: a late status, the year end, the audit replay. The
fields are read from the struct itself, so a field added later is covered without touching this test
(a field of a type `_other` does not know fails here, to be taught one value).
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec
import msgspec.inspect as mi
import pytest

from builders import enrolment, medins, stay
from events import ledger as ev
from events.messages import DECODER, PsnIdentity, Settlement, encode_message
from events.upcast import decode_commit
from harness import Ledger, packs
from services.audit.replay import inbound_of
from services.policy import redecide, year_end
from services.policy.benefits import choose
from services.policy.settlement_decision import facts_of
from services.policy.state import Person, PersonYear, apply_commit, evolve

FIELDS = [f.name for f in msgspec.structs.fields(Settlement)]


def _other(value, info: mi.Type):
    """A valid value of the field's type other than `value`."""
    if isinstance(info, mi.UnionType):             # optional: a value of the type that is not None
        return _other(value, next(t for t in info.types if not isinstance(t, mi.NoneType)))
    if isinstance(info, mi.LiteralType):
        return next(v for v in info.values if v != value)
    if isinstance(info, mi.StrType):              # the last character moved on: an area stays in its city
        last = value[-1]
        return value[:-1] + (str((int(last) + 1) % 10) if last.isdigit() else "X")
    if isinstance(info, mi.BoolType):
        return not value
    if isinstance(info, mi.DecimalType):
        return value + Decimal("0.01")
    if isinstance(info, mi.DateType):
        return value - dt.timedelta(days=1)
    if isinstance(info, mi.DateTimeType):
        return value + dt.timedelta(minutes=1)
    raise AssertionError(f"no other value for {info}: teach _other the type of the new field")


@pytest.fixture(scope="module")
def decided() -> tuple[Person, ev.SettlementFacts]:
    ledger = Ledger()
    ledger.send(medins(), enrolment("P"), stay("S1", "P", total="30000", in_scope="28000", hifp="16800",
                                               ooc="2000"))
    person = ledger.person("P")
    return person, person.settlements["S1"].facts


def _changed(facts: ev.SettlementFacts, name: str) -> Settlement:
    info = {f.name: f for f in mi.type_info(Settlement).fields}[name].type
    changed = msgspec.structs.replace(facts.settlement, **{name: _other(getattr(facts.settlement, name), info)})
    assert getattr(changed, name) != getattr(facts.settlement, name)
    return changed


def _stored_and_folded(person: Person, facts: ev.SettlementFacts) -> tuple[ev.Commit, Person]:
    """The facts through the stored bytes and the fold, onto a person with the same enrolment."""
    commit = decode_commit(ev.COMMIT_ENCODER.encode(ev.Commit("c", "c", [facts])))
    folded = Person("P", enrolments=dict(person.enrolments))
    apply_commit(folded, commit)
    return commit, folded


def test_the_sample_settlement_is_kept_as_sent(decided) -> None:
    _, facts = decided
    sent = DECODER.decode(encode_message(facts.settlement))
    assert facts.settlement == sent and facts.settlement.setl_id == facts.setl_id == "S1"


@pytest.mark.parametrize("name", FIELDS)
def test_every_field_is_carried_into_each_re_decision(decided, name: str, monkeypatch) -> None:
    person, real = decided
    pack = packs().for_area("141002", dt.date(2022, 3, 10))
    changed = _changed(real, name)
    outcome = choose(person, real.settlement, real.hospital, pack)
    facts = facts_of(changed, real.hospital, outcome, PersonYear(2022), after_year_close=False)
    assert facts.settlement is changed and (facts.setl_id, facts.psn_no) == (changed.setl_id, changed.psn_no)

    commit, folded = _stored_and_folded(person, msgspec.structs.replace(facts, quota_base=Decimal("100")))
    kept = folded.settlements[facts.setl_id].facts.settlement
    assert kept == changed

    # The audit replay sends the kept settlement through the decision path again, as bytes.
    assert DECODER.decode(encode_message(inbound_of(commit))) == changed

    # A late status re-decides the stay from the kept settlement itself.
    seen: list[Settlement] = []
    monkeypatch.setattr(redecide, "choose",
                        lambda person, msg, *a, **k: seen.append(msg) or choose(person, msg, *a, **k))
    grant = PsnIdentity(psn_no="P", admdvs="141002", status="dibao", action="grant", begndate=dt.date(2021, 6, 1),
                        source_dept="民政", doc_no="D1")
    redecide.redecide_for_grant(folded, grant, pack, lambda _facts: pack, lambda _admdvs, _year: False)
    assert seen == [changed] and seen[0] is kept

    # The year end pays the (quota) visit from it, as a visit paid at once: only chronic_mgmt differs.
    evolve(folded, ev.StatusGranted(psn_no="P", admdvs="141002", status="dibao", begndate=dt.date(2021, 6, 1),
                                    enddate=None, source_dept="民政", doc_no="D1"))
    paid: list[Settlement] = []
    real_evaluate = year_end.evaluate
    monkeypatch.setattr(year_end, "evaluate", lambda s, p, msg, *a: paid.append(msg) or real_evaluate(s, p, msg, *a))
    year_end.decide_quota_year_end(folded, "141000", 2022, packs())
    assert paid and all(msgspec.structs.replace(msg, chronic_mgmt=changed.chronic_mgmt) == changed for msg in paid)
