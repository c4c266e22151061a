"""Properties of the one decision path over random message sequences (hypothesis).

A sequence records the hospitals of both packs, then interleaves, for a few persons of Linfen and Qinghai,
statuses (some late, some revoked, Qinghai expenditure_poverty looking back 180 days), enrolments (some
missing or outside the normal period), inpatient stays and outpatient visits of every kind, cancels,
resends, tilted grants and year closes.
"""
from __future__ import annotations

import io
from decimal import Decimal, InvalidOperation

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import (LINFEN, QINGHAI, cancel, enrolment, grant, identity, medins, qinghai_medins, raw, stay, visit,
                      year_close)
from harness import Ledger, balanced, packs
from services.cli.replay import run
from services.policy.state import Person, apply_commit

HOSPITALS = {
    LINFEN: [medins(), medins("LF-II", ooc_class="II_city"), medins("LF-III", ooc_class="II_county_III", serious=False),
             medins("LF-OUT", in_province=False), medins("LF-ND", designated=False, ooc_class=None)],
    QINGHAI: [qinghai_medins(), qinghai_medins("QH-ND", designated=False)],
}
STATUSES = {LINFEN: packs().by_id["linfen-2022"].statuses, QINGHAI: packs().by_id["qinghai-2022"].statuses}
DISEASES = ["K35.9", "K35.9", "C34.1", "N18.5", "E75.2", "E74.0", "I21.0"]
PROPERTY_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def yuan(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


@st.composite
def day(draw, year: int = 2022) -> str:
    month = draw(st.integers(1, 12))
    return f"{year}-{month:02d}-{draw(st.integers(1, 28)):02d}"


@st.composite
def amounts(draw) -> dict:
    """Consistent platform figures: total ≥ in_scope + ooc, hifp ≤ in_scope, hifp + oth ≤ total."""
    in_scope = draw(st.one_of(st.integers(0, 2_000_000), st.integers(0, 40_000_000)))
    hifp = draw(st.integers(0, in_scope))
    ooc = draw(st.one_of(st.just(0), st.integers(0, 8_000_000)))
    extra = draw(st.one_of(st.just(0), st.integers(0, 500_000)))
    total = in_scope + ooc + extra
    oth = draw(st.one_of(st.just(0), st.integers(0, total - hifp)))
    return dict(total=yuan(total), in_scope=yuan(in_scope), hifp=yuan(hifp), ooc=yuan(ooc), oth=yuan(oth))


@st.composite
def sequences(draw) -> list[dict]:
    messages: list[dict] = [m for area in (LINFEN, QINGHAI) for m in HOSPITALS[area]]
    persons = []
    for n in range(draw(st.integers(1, 4))):
        area = draw(st.sampled_from([LINFEN, QINGHAI]))
        insutype = draw(st.sampled_from(["390", "390", "390", "310"]))
        persons.append((f"P{n}", area, insutype))
        favoured = st.sampled_from(STATUSES[area][:5] * 3 + STATUSES[area])    # the statuses with most lines
        for status in draw(st.lists(favoured, max_size=3, unique=True)):
            messages.append(identity(f"P{n}", status, admdvs=area, begndate=draw(st.sampled_from(
                ["2021-01-01", "2022-01-01", "2022-04-01"]))))
        if draw(st.integers(0, 9)):
            messages.append(enrolment(f"P{n}", admdvs=area, insutype=insutype,
                                      brdy=draw(st.sampled_from(["1950-03-01", "1980-03-01", "2010-03-01"])),
                                      in_normal_period=draw(st.sampled_from([True, True, False]))))
    setl_ids: list[tuple[str, str]] = []
    for i in range(draw(st.integers(1, 30))):
        psn_no, area, insutype = draw(st.sampled_from(persons))
        kind = draw(st.sampled_from(["stay"] * 6 + ["visit"] * 3 + ["cancel", "resend", "grant", "identity",
                                                                     "identity", "revoke", "close", "enrol"]))
        hospital = draw(st.sampled_from(HOSPITALS[area]))["fixmedins_code"]
        if kind == "stay":
            messages.append(stay(f"S{i}", psn_no, admdvs=area, hospital=hospital, enddate=draw(day()),
                                 dise=draw(st.sampled_from(DISEASES)), insutype=insutype, **draw(amounts())))
            setl_ids.append((f"S{i}", psn_no))
        elif kind == "visit":
            figures = draw(amounts())
            messages.append(visit(f"S{i}", psn_no, admdvs=area, hospital=hospital, date=draw(day()), insutype=insutype,
                                  chronic_mgmt=draw(st.sampled_from(["inpatient_managed", "quota", None])),
                                  special_drug=draw(st.booleans()),
                                  med_type=draw(st.sampled_from(["14", "14", "11"])), **figures))
            setl_ids.append((f"S{i}", psn_no))
        elif kind == "cancel":
            setl_id, owner = draw(st.sampled_from(setl_ids)) if setl_ids else ("S-none", psn_no)
            messages.append(cancel(setl_id, owner))
        elif kind == "resend" and len(messages) > 7:
            messages.append(draw(st.sampled_from(messages[7:])))
        elif kind == "grant":
            messages.append(grant(f"G{i}", psn_no, yuan(draw(st.integers(1, 3_000_000))), admdvs=area))
        elif kind == "identity":
            status = "expenditure_poverty" if area == QINGHAI and draw(st.integers(0, 3)) else draw(
                st.sampled_from(STATUSES[area]))
            messages.append(identity(psn_no, status, admdvs=area, begndate=draw(day()), doc_no=f"D{i}"))
        elif kind == "revoke":
            messages.append(identity(psn_no, draw(st.sampled_from(STATUSES[area])), admdvs=area, action="revoke",
                                     begndate=draw(day()), doc_no=f"R{i}"))
        elif kind == "close":
            messages.append(year_close("141000" if area == LINFEN else "630000", 2022))
        elif kind == "enrol":
            messages.append(enrolment(psn_no, admdvs=area, insutype=insutype))
    if draw(st.booleans()):
        messages += [year_close("141000", 2022), year_close("630000", 2022)]     # pays quota visits
    return messages


def replayed(messages: list[dict]) -> tuple[Ledger, list[dict]]:
    ledger = Ledger()
    return ledger, ledger.send(*messages)


def _walk(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)
    else:
        yield value


def _number(value) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


@PROPERTY_SETTINGS
@given(sequences())
def test_no_negative_amount_in_any_result(messages):
    _, results = replayed(messages)
    for result in results:
        for value in _walk(result):
            number = _number(value)
            assert number is None or number >= 0, (value, result)


@PROPERTY_SETTINGS
@given(sequences())
def test_every_settled_result_adds_up(messages):
    """integration.md §2: medfee_sumamt = hifp + oth + hifmi + maf + hosp + psn, every part ≥ 0."""
    _, results = replayed(messages)
    for r in results:
        if r["msg_type"] == "settlement_result" and r["result"] in ("settled", "duplicate"):
            assert balanced(r), r


@PROPERTY_SETTINGS
@given(sequences())
def test_the_shared_cap_is_never_exceeded(messages):
    """policy.md §8.3: cap.used ≤ cap.limit in every result; each person-year's counter ≤ its pack's limit."""
    ledger, results = replayed(messages)
    for r in results:
        if r.get("cap"):
            assert Decimal(r["cap"]["used"]) <= Decimal(r["cap"]["limit"]), r
    for psn_no, person in ledger.store.persons.items():
        area = LINFEN if any(m.get("psn_no") == psn_no and m.get("admdvs") == LINFEN for m in messages) else QINGHAI
        limit = packs().by_id["linfen-2022" if area == LINFEN else "qinghai-2022"].shared_cap
        for y in person.years.values():
            assert y.assistance_cap_used <= limit
            for rule, cap in (("linfen.inpatient.low_income_applicant", 10000), ("linfen.inpatient.gaucher_pompe", 60000)):
                assert y.own_used.get(rule, 0) <= cap


@PROPERTY_SETTINGS
@given(sequences())
def test_cancelling_every_settlement_returns_every_counter_to_zero(messages):
    """policy.md §8.4: after cancelling all settlements only tilted grants remain on the shared counter."""
    ledger, results = replayed(messages)
    settled = {(r["setl_id"], r["psn_no"]) for r in results
               if r["msg_type"] == "settlement_result" and r["result"] == "settled"}
    ledger.send(*(cancel(setl_id, psn_no) for setl_id, psn_no in sorted(settled)))
    for person in ledger.store.persons.values():
        granted = {}
        for g in person.grants.values():
            if g.granted is not None:
                granted[g.year] = granted.get(g.year, 0) + g.granted
        for year, y in person.years.items():
            assert (y.ci_base, y.ci_paid, y.assist_base) == (0, 0, 0), y
            assert y.assistance_cap_used == granted.get(year, 0), y
            assert all(v == 0 for k, v in y.own_used.items() if k != "tilted_grant"), y
            assert all(v == 0 for k, v in y.rule_totals.items() if k != "tilted_grant"), y


@settings(max_examples=40, deadline=None)
@given(sequences())
def test_replaying_the_same_file_twice_gives_identical_bytes(tmp_path_factory, messages):
    path = tmp_path_factory.mktemp("replay") / "in.jsonl"
    path.write_bytes(b"\n".join(raw(m) for m in messages) + b"\n")
    first, second = io.BytesIO(), io.BytesIO()
    assert run(str(path), None, first) == 0
    assert run(str(path), None, second) == 0
    assert first.getvalue() == second.getvalue()
    assert len(first.getvalue().splitlines()) >= len(messages)


@PROPERTY_SETTINGS
@given(sequences())
def test_folding_the_stored_commits_equals_the_live_state(messages):
    """design.md §2: state is a fold of the person's events; replay equals live."""
    ledger, _ = replayed(messages)
    fresh: dict[str, Person] = {}
    for sequence, (psn_no, commit) in enumerate(ledger.store.commits, start=1):
        if psn_no is not None:
            apply_commit(fresh.setdefault(psn_no, Person(psn_no)), json_roundtrip(commit), sequence)
    live = {p: person for p, person in ledger.store.persons.items() if person.version}
    assert fresh == live


def json_roundtrip(commit):
    """What a store keeps is bytes: fold the commit as it comes back from them."""
    from events.ledger import COMMIT_ENCODER
    from events.upcast import decode_commit
    return decode_commit(COMMIT_ENCODER.encode(commit))


ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12), st.sampled_from(["", "NaN", "-1", "1e30", "0.001", "-0", "2022-02-30", "2022-13-01",
                                           "99999999999999999999999999999.99", "tekun", "21", "quota"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@st.composite
def damaged(draw) -> list[bytes]:
    """Valid sequences with some messages damaged: a field dropped or given an odd value, or bytes cut."""
    lines = []
    for message in draw(sequences()):
        what = draw(st.sampled_from(["keep"] * 6 + ["drop", "odd", "cut"]))
        if what == "drop" and len(message) > 1:
            message = dict(message)
            del message[draw(st.sampled_from(sorted(message)))]
        elif what == "odd":
            message = {**message, draw(st.sampled_from(sorted(message))): draw(ODD_VALUES)}
        data = raw(message)
        if what == "cut":
            data = data[:draw(st.integers(0, len(data)))]
        lines.append(data)
    return lines


@PROPERTY_SETTINGS
@given(damaged())
def test_every_line_gets_an_answer_and_nothing_crashes(lines):
    """integration.md §4: a message that cannot be decided is never dropped: it gets a rejected result."""
    ledger = Ledger()
    for data in lines:
        results = ledger.send_raw(data)
        assert results, data
        for r in results:
            assert r["msg_type"] == "settlement_adjustment" or r["result"] in (
                "settled", "duplicate", "rejected", "recorded", "reversed", "closed"), r
            if r.get("result") != "rejected":          # a rejection may echo what it was sent
                for name, value in _money_fields(r):
                    assert value >= 0, (name, r)


MONEY_NAMES = {"medfee_sumamt", "hifp_pay", "oth_pay", "hifmi_pay", "maf_pay", "hosp_part_amt", "psn_part_amt",
               "subsidy", "requested", "granted", "refused", "base", "amount", "limit", "used", "remaining"}


def _money_fields(value):
    """(name, Decimal) of every money field, however deep (lines, cap)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k in MONEY_NAMES and isinstance(v, str):
                yield k, Decimal(v)
            else:
                yield from _money_fields(v)
    elif isinstance(value, list):
        for v in value:
            yield from _money_fields(v)
