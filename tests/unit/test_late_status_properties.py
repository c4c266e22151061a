"""Property: a grant applied late, at any point, gives the same final totals as the same grant sent before
the stays (policy.md §12: "decided again, in its original order, as if the status had been known").

What the property cannot cover, by the reading itself ("nothing is taken back"):
* Qinghai `expenditure_poverty` looks back 180 days before `begndate` (五(一)): stays before the status
  begins are paid only when it comes late, so that status is left out here (tests/unit/test_retroactive.py).
* Gaucher/Pompe (临汾 二(四)3) pays a patient with no status too; a status whose 大病 tilt lowers what that
  line pays could leave more paid late than early, and what was paid stays paid. Those codes are left out.
* Hospital-borne amounts are not re-decided (services/policy/redecide.py), so the person's share may
  differ; the funds' totals compared here do not.
Stays are kept small enough that no 大病 cap binds (Linfen's 300,000 also bounds no-status stays later).
"""
from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import LINFEN, QINGHAI, enrolment, identity, medins, qinghai_medins, stay
from harness import Ledger, packs

HOSPITALS = {
    LINFEN: [medins(), medins("LF-II", ooc_class="II_city"), medins("LF-OUT", in_province=False),
             medins("LF-ND", designated=False, ooc_class=None)],
    QINGHAI: [qinghai_medins(), qinghai_medins("QH-ND", designated=False)],
}
STATUSES = {LINFEN: packs().by_id["linfen-2022"].statuses,
            QINGHAI: [s for s in packs().by_id["qinghai-2022"].statuses if s != "expenditure_poverty"]}
DISEASES = ["K35.9", "C34.1", "N18.5", "I21.0"]


def yuan(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


@st.composite
def cases(draw) -> tuple[list[dict], dict, int]:
    area = draw(st.sampled_from([LINFEN, QINGHAI]))
    status = draw(st.sampled_from(STATUSES[area]))
    begin = f"2022-{draw(st.integers(1, 12)):02d}-{draw(st.integers(1, 28)):02d}"
    end = draw(st.one_of(st.none(), st.just("2022-12-31"), st.just(f"2022-{draw(st.integers(6, 12)):02d}-28")))
    if end is not None and end < begin:
        end = None
    grant = identity("P", status, admdvs=area, begndate=begin, enddate=end, doc_no="LATE-1")
    stays = []
    for i in range(draw(st.integers(1, 5))):
        in_scope = draw(st.integers(0, 6_000_000))
        hifp = draw(st.integers(0, in_scope))
        ooc = draw(st.one_of(st.just(0), st.integers(0, 1_000_000)))
        hospital = draw(st.sampled_from(HOSPITALS[area]))["fixmedins_code"]
        stays.append(stay(f"S{i}", "P", admdvs=area, hospital=hospital, dise=draw(st.sampled_from(DISEASES)),
                          enddate=f"2022-{draw(st.integers(1, 12)):02d}-{draw(st.integers(1, 28)):02d}",
                          total=yuan(in_scope + ooc), in_scope=yuan(in_scope), ooc=yuan(ooc), hifp=yuan(hifp)))
    return [*HOSPITALS[area], enrolment("P", admdvs=area)], grant, stays, draw(st.integers(0, len(stays)))


def totals(ledger: Ledger) -> dict:
    y = ledger.year("P")
    return {"ci_paid": y.ci_paid, "cap_used": y.assistance_cap_used, "assist_base": y.assist_base,
            "assistance": sum((v for k, v in y.rule_totals.items() if ".inpatient." in k), Decimal(0))}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_a_late_grant_gives_the_totals_of_an_early_one(case):
    setup, grant, stays, at = case
    early, late = Ledger(), Ledger()
    early.send(*setup, grant, *stays)
    late.send(*setup, *stays[:at], grant, *stays[at:])
    assert totals(late) == totals(early)
