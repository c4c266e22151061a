"""policy.md §6 门诊救助 and the year end of §9: per visit (住院管理) or once at year_close (限额管理)."""
from __future__ import annotations

import pytest

from builders import QINGHAI, cancel, enrolment, identity, medins, qinghai_medins, stay, visit, year_close
from harness import D


@pytest.fixture
def lf(ledger):
    ledger.send(medins(), enrolment("P"))
    return ledger


@pytest.fixture
def qh(ledger):
    ledger.send(qinghai_medins(), enrolment("P", admdvs=QINGHAI))
    return ledger


def lf_visit(setl_id, **kw):
    """remaining = in_scope 1,000 − basic 600 = 400 (no 大病 for outpatient, §11)."""
    return visit(setl_id, "P", total="1000", in_scope="1000", hifp="600", **kw)


@pytest.mark.parametrize("status, special, ratio, maf", [
    ("tekun", False, "0.60", "240.00"),              # chronic 60% × 400
    ("tekun", True, "0.20", "80.00"),                # special drug 20% × 400
    ("dibao", False, "0.30", "120.00"),              # chronic 30% × 400
    ("dibao", True, "0.10", "40.00"),                # special drug 10% × 400
    ("returned_poverty", False, "0.30", "120.00"),
    ("returned_poverty", True, "0.10", "40.00"),
])
def test_linfen_2_5_outpatient_per_visit(lf, status, special, ratio, maf):
    """临汾 二(五): chronic (门诊慢性病) tekun 60% / dibao, returned 30%; special drug (门诊特药) 20% / 10%;
    inpatient-managed chronic diseases are assisted visit by visit. remaining = 1,000 − 600 = 400."""
    lf.one(identity("P", status))
    r = lf.one(lf_visit("V1", special_drug=special))
    assert (r["status"], D(r["hifmi_pay"]), D(r["maf_pay"])) == (status, 0, D(maf))
    assert D(r["lines"][0]["ratio"]) == D(ratio) and D(r["lines"][0]["base"]) == D("400.00")
    assert D(r["psn_part_amt"]) == D("400.00") - D(maf)


@pytest.mark.parametrize("status, maf", [("tekun", "240.00"), ("orphan", "240.00"), ("dibao", "120.00")])
@pytest.mark.parametrize("special", [False, True])
def test_qinghai_4_3_outpatient_chronic_and_special_defaults(qh, status, maf, special):
    """青海 四(三), ratios [configurable]: policy.md §10 defaults tekun, orphan 60% / dibao 30%, for both
    chronic and special. remaining 400 → 240.00 / 120.00, inside the shared 20,000 cap."""
    qh.one(identity("P", status, admdvs=QINGHAI))
    r = qh.one(lf_visit("V1", special_drug=special, admdvs=QINGHAI))
    assert D(r["maf_pay"]) == D(maf)
    assert (D(r["cap"]["limit"]), D(r["cap"]["used"])) == (D("20000"), D(maf))


def test_ordinary_outpatient_gets_no_assistance(lf):
    """med_type 11 (ordinary outpatient) is in neither text's outpatient assistance."""
    lf.one(identity("P", "tekun"))
    assert D(lf.one(lf_visit("V1", med_type="11", chronic_mgmt=None))["maf_pay"]) == 0


def test_outpatient_adds_nothing_to_inpatient_assistance_bases(lf):
    """policy.md §11: outpatient lines work per visit and add nothing to inpatient bases.
    low_income_applicant: a chronic visit with remaining 30,000 does not bring the 20,000 threshold closer."""
    lf.one(identity("P", "low_income_applicant"))
    lf.one(visit("V1", "P", total="30000", in_scope="30000", hifp="0"))
    assert lf.year("P").assist_base == 0


def test_linfen_2_5_tekun_outpatient_is_uncapped(lf):
    """policy.md §11: a status without a cap (tekun) makes its outpatient lines uncapped too.
    remaining 200,000 → 60% = 120,000.00, more than 60,000; the shared counter stays 0."""
    lf.one(identity("P", "tekun"))
    r = lf.one(visit("V1", "P", total="200000", in_scope="200000", hifp="0"))
    assert D(r["maf_pay"]) == D("120000.00") and r["cap"] is None
    assert lf.year("P").assistance_cap_used == 0


# ---- the cap shared by outpatient and inpatient ----------------------------------------------------------

def test_qinghai_4_3_outpatient_and_inpatient_share_one_cap(qh):
    """青海 四(三) 门诊和住院救助共用年度救助限额 (20,000). dibao:
    Visit: remaining 50,000 − 10,000 = 40,000 → 30% = 12,000.00 (used 12,000).
    Stay 1: oop 30,000; 大病 tilt 0.85 × (30,000 − 6,000) = 20,400 (the visit added nothing to B);
            r 9,600 → 70% = 6,720.00 (used 18,720).
    Stay 2: B 30,000 → 大病 0.85 × 30,000 = 25,500; r 4,500 → 3,150, only 1,280.00 left (used 20,000)."""
    qh.one(identity("P", "dibao", admdvs=QINGHAI))
    v = qh.one(visit("V1", "P", total="50000", in_scope="50000", hifp="10000", admdvs=QINGHAI))
    s1 = qh.one(stay("S1", "P", total="50000", in_scope="50000", hifp="20000", admdvs=QINGHAI))
    s2 = qh.one(stay("S2", "P", total="50000", in_scope="50000", hifp="20000", admdvs=QINGHAI))
    assert D(v["maf_pay"]) == D("12000.00")
    assert (D(s1["hifmi_pay"]), D(s1["maf_pay"])) == (D("20400.00"), D("6720.00"))
    assert (D(s2["hifmi_pay"]), D(s2["maf_pay"])) == (D("25500.00"), D("1280.00"))
    assert (D(s2["cap"]["used"]), D(s2["cap"]["remaining"])) == (D("20000.00"), 0)


def test_linfen_inpatient_then_outpatient_share_one_cap(lf):
    """临汾 二(五) shares the 二(四)1 limit 60,000. dibao:
    Stay: oop 200,000; 大病 0.80 × 195,000 = 156,000; r 44,000 → 30,800. Again: r 40,000 → 28,000 (58,800).
    Visit: remaining 10,000 → 30% = 3,000, only 1,200.00 left."""
    lf.one(identity("P", "dibao"))
    for i in (1, 2):
        lf.one(stay(f"S{i}", "P", total="300000", in_scope="300000", hifp="100000"))
    v = lf.one(visit("V1", "P", total="10000", in_scope="10000", hifp="0"))
    assert D(v["maf_pay"]) == D("1200.00") and D(v["cap"]["remaining"]) == 0


# ---- quota-managed chronic outpatient, paid once at year_close (policy.md §9) ---------------------------

def quota_year(lf):
    """dibao, three quota visits with remaining 400, 500, 600 (in_scope − basic)."""
    lf.one(identity("P", "dibao"))
    results = [lf.one(visit(f"V{i}", "P", total=str(t), in_scope=str(t), hifp="0", chronic_mgmt="quota",
                            date=f"2022-0{i + 3}-01"))
               for i, t in enumerate((400, 500, 600), start=1)]
    return results


def test_linfen_2_5_quota_visits_pay_nothing_until_year_close(lf):
    for r in quota_year(lf):
        assert r["result"] == "settled" and D(r["maf_pay"]) == 0
    assert lf.year("P").assistance_cap_used == 0


def test_linfen_2_5_year_close_pays_quota_visits_once(lf):
    """临汾 二(五) 限额管理 paid once at year end on the year's visits, §6 ratios, within the shared cap:
    dibao 30%: 0.30 × 400 = 120.00, 0.30 × 500 = 150.00, 0.30 × 600 = 180.00 → 450.00 in all,
    one settlement_adjustment per visit, right after the year_close result."""
    quota_year(lf)
    out = lf.send(year_close("141000", 2022))
    assert out[0]["msg_type"] == "year_close_result"
    assert out[0]["result"] == "closed"
    adj = out[1:]
    assert out[0]["adjustments"] == adj          # integration.md §2: the reply carries them whole
    assert [a["msg_type"] for a in adj] == ["settlement_adjustment"] * 3
    assert [(a["setl_id"], D(a["maf_pay"])) for a in adj] == [
        ("V1", D("120.00")), ("V2", D("150.00")), ("V3", D("180.00"))]
    assert "year end" in adj[0]["reason"]
    assert lf.year("P").assistance_cap_used == D("450.00")
    assert D(adj[-1]["cap"]["used"]) == D("450.00")


def test_year_close_repeated_is_a_duplicate_and_pays_nothing_more(lf):
    """integration.md §1 year_close: 'Repeating it changes nothing.'"""
    quota_year(lf)
    lf.send(year_close("141000", 2022))
    again = lf.send(year_close("141000", 2022))
    assert [(r["msg_type"], r["result"], r["adjustments"]) for r in again] == [("year_close_result", "duplicate", [])]
    assert lf.year("P").assistance_cap_used == D("450.00")


def test_year_close_respects_the_shared_cap(lf):
    """dibao: 58,800 used by two stays (see test_linfen_inpatient_then_outpatient_share_one_cap), then quota
    visits worth 120 + 150 + 180: only 1,200 left → 120.00, 150.00, 180.00 fit (450 ≤ 1,200); a fourth
    visit of remaining 3,000 → 900 but only 750.00 left."""
    lf.one(identity("P", "dibao"))
    for i in (1, 2):
        lf.one(stay(f"S{i}", "P", total="300000", in_scope="300000", hifp="100000"))
    for i, t in enumerate((400, 500, 600, 3000), start=1):
        lf.one(visit(f"V{i}", "P", total=str(t), in_scope=str(t), hifp="0", chronic_mgmt="quota"))
    out = lf.send(year_close("141000", 2022))
    assert [D(a["maf_pay"]) for a in out[1:]] == [D("120.00"), D("150.00"), D("180.00"), D("750.00")]
    assert lf.year("P").assistance_cap_used == D("60000.00")


def test_year_close_skips_cancelled_quota_visits_and_other_areas(lf):
    """A cancelled visit is not paid; a year_close of another area pays nothing here."""
    quota_year(lf)
    lf.one(cancel("V2", "P"))
    assert lf.send(year_close("630000", 2022))[0]["adjustments"] == []
    out = lf.send(year_close("141000", 2022))
    assert [a["setl_id"] for a in out[1:]] == ["V1", "V3"]


def test_cancel_after_year_close_takes_back_the_year_end_payment(lf):
    """policy.md §8.4: cancelling a quota visit after year end reverses its adjustment too."""
    quota_year(lf)
    lf.send(year_close("141000", 2022))
    c = lf.one(cancel("V3", "P"))
    assert (c["result"], D(c["maf_pay"])) == ("reversed", D("180.00"))
    assert lf.year("P").assistance_cap_used == D("270.00")


def test_a_quota_visit_settled_after_year_close_is_paid_at_the_visit(lf):
    """临汾 二(五): no second year end comes, so a quota visit of a closed year is paid when it settles, at the
    same §6 ratio within the same cap: dibao 30%, remaining 700 → 210.00; cap used 450.00 + 210.00 = 660.00.
    A later repeat of the close still pays nothing, and cancelling the visit takes exactly 210.00 back."""
    quota_year(lf)
    lf.send(year_close("141000", 2022))
    late = lf.one(visit("V9", "P", total="700", in_scope="700", hifp="0", chronic_mgmt="quota", date="2022-12-20"))
    assert (late["result"], D(late["maf_pay"])) == ("settled", D("210.00"))
    assert [(l["fund"], D(l["ratio"]), D(l["amount"])) for l in late["lines"]] == [
        ("assistance", D("0.30"), D("210.00"))]
    assert lf.year("P").assistance_cap_used == D("660.00")
    facts = lf.person("P").settlements["V9"].facts
    assert facts.after_year_close and facts.settlement.chronic_mgmt == "quota" and facts.quota_base == 0
    assert lf.send(year_close("141000", 2022))[0]["adjustments"] == []
    c = lf.one(cancel("V9", "P"))
    assert (c["result"], D(c["maf_pay"])) == ("reversed", D("210.00"))
    assert lf.year("P").assistance_cap_used == D("450.00")


def test_a_quota_visit_of_a_year_still_open_waits_for_its_close(lf):
    """Closing 2021, or another area's 2022, does not make a Linfen 2022 quota visit payable at the visit."""
    lf.one(identity("P", "dibao"))
    lf.send(year_close("141000", 2021), year_close("630000", 2022))
    v = lf.one(visit("V1", "P", total="400", in_scope="400", hifp="0", chronic_mgmt="quota"))
    assert D(v["maf_pay"]) == 0 and not lf.person("P").settlements["V1"].facts.after_year_close
