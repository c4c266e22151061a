"""policy.md §5 Linfen 住院救助 (二(四), 二(六), 三(三)), with the settled readings of §11.

Hospitals: LF-I designated, in province, out-of-catalogue class I (30%), serious-disease hospital;
LF-II / LF-III classes II_city (20%) / II_county_III (15%); LF-OUT out of province; LF-NS not a
serious-disease hospital.
"""
from __future__ import annotations

import pytest

from builders import enrolment, identity, medins, stay
from harness import D, Ledger, line, rule_ids, with_income


@pytest.fixture
def lf(ledger):
    ledger.send(medins(), medins("LF-II", ooc_class="II_city"), medins("LF-III", ooc_class="II_county_III"),
                medins("LF-OUT", in_province=False), medins("LF-NS", serious=False),
                enrolment("P"), enrolment("P", year=2026, std="400"))
    return ledger


def with_status(ledger, *statuses):
    for status in statuses:
        ledger.one(identity("P", status))
    return ledger


def lf_stay(setl_id, *, in_scope, hifp, **kw):
    kw.setdefault("total", in_scope)
    return stay(setl_id, "P", in_scope=in_scope, hifp=hifp, **kw)


def figures(r):
    return tuple(D(r[k]) for k in ("hifmi_pay", "maf_pay", "hosp_part_amt", "psn_part_amt"))


# ---- 二(四)1 tekun ---------------------------------------------------------------------------------------

def test_linfen_2_4_1_tekun_100_percent_of_remaining(lf):
    """临汾 二(四)1 特困: 100% of remaining. oop 50,000 − 30,000 = 20,000; 大病 tilt 0.80 × 15,000 = 12,000;
    remaining 8,000 → 8,000.00; psn 0; uncapped (no cap in the result, shared counter untouched)."""
    with_status(lf, "tekun")
    r = lf.one(lf_stay("S1", in_scope="50000", hifp="30000"))
    assert figures(r) == (D("12000.00"), D("8000.00"), 0, 0)
    assert line(r, "linfen.inpatient.tekun") and r["cap"] is None


def test_linfen_2_4_1_tekun_is_uncapped(lf):
    """临汾 二(四)1: tekun has no annual limit. Stay 1: oop 200,000; 大病 0.80 × 195,000 = 156,000;
    remaining 44,000 → 44,000. Stay 2: B 200,000 → 大病 0.80 × 200,000 = 160,000; remaining 40,000 → 40,000.
    84,000 in the year, above 60,000, and the shared counter stays 0."""
    with_status(lf, "tekun")
    r1 = lf.one(lf_stay("S1", in_scope="500000", hifp="300000"))
    r2 = lf.one(lf_stay("S2", in_scope="500000", hifp="300000"))
    assert (D(r1["maf_pay"]), D(r2["maf_pay"])) == (D("44000.00"), D("40000.00"))
    assert lf.year("P").assistance_cap_used == 0


# ---- 二(四)1 returned_poverty: 70% and the 90% top-up (policy.md §11) -------------------------------------

def test_linfen_2_4_1_returned_poverty_top_up_to_90_percent_in_province(lf):
    """临汾 二(四)1 with §11: assistance = min(r, max(0.7 r, 0.9 × in_scope − hifp − ci)).
    in_scope 10,000, hifp 5,000: oop 5,000; 大病 tilt D 5,000 → 0; r 5,000.
    0.7 r = 3,500; 0.9 × 10,000 − 5,000 − 0 = 4,000 → 4,000.00. (5,000 + 0 + 4,000) / 10,000 = 90%."""
    with_status(lf, "returned_poverty")
    r = lf.one(lf_stay("S1", in_scope="10000", hifp="5000", hospital="LF-NS"))
    assert figures(r) == (0, D("4000.00"), 0, D("1000.00"))
    l = line(r, "linfen.inpatient.returned_poverty")
    assert (D(l["base"]), D(l["ratio"])) == (D("5000.00"), D("0.70"))
    assert r["cap"] is None and lf.year("P").assistance_cap_used == 0


def test_linfen_2_4_1_returned_poverty_70_percent_when_it_beats_the_top_up(lf):
    """oop 50,000 − 30,000 = 20,000; 大病 0.80 × 15,000 = 12,000; r 8,000.
    0.7 r = 5,600 > 0.9 × 50,000 − 30,000 − 12,000 = 3,000 → 5,600.00."""
    with_status(lf, "returned_poverty")
    r = lf.one(lf_stay("S1", in_scope="50000", hifp="30000"))
    assert figures(r) == (D("12000.00"), D("5600.00"), 0, D("2400.00"))


def test_linfen_2_4_1_returned_poverty_out_of_province_gets_70_percent_only(lf):
    """临汾 二(四)1: the 90% top-up is for in-province stays. Same stay out of province: 0.7 × 5,000 = 3,500.00."""
    with_status(lf, "returned_poverty")
    r = lf.one(lf_stay("S1", in_scope="10000", hifp="5000", hospital="LF-OUT"))
    assert figures(r) == (0, D("3500.00"), 0, D("1500.00"))


# ---- 二(四)1 dibao ---------------------------------------------------------------------------------------

def test_linfen_2_4_1_dibao_70_percent(lf):
    """临汾 二(四)1 低保: 70% of remaining, shared 60,000. oop 20,000; 大病 12,000; r 8,000 → 5,600.00."""
    with_status(lf, "dibao")
    r = lf.one(lf_stay("S1", in_scope="50000", hifp="30000"))
    assert figures(r) == (D("12000.00"), D("5600.00"), 0, D("2400.00"))
    assert (D(r["cap"]["limit"]), D(r["cap"]["used"])) == (D("60000"), D("5600.00"))


def test_linfen_2_4_1_dibao_annual_limit_60000(lf):
    """临汾 二(四)1 年度最高救助限额6万元.
    Stay 1: oop 200,000; 大病 0.80 × 195,000 = 156,000; r 44,000 → 30,800 (used 30,800).
    Stay 2: 大病 0.80 × 200,000 = 160,000; r 40,000 → 28,000 (used 58,800).
    Stay 3: r 40,000 → 28,000 but only 60,000 − 58,800 = 1,200.00 left."""
    with_status(lf, "dibao")
    maf = [D(lf.one(lf_stay(f"S{i}", in_scope="300000", hifp="100000", hospital="LF-NS"))["maf_pay"])
           for i in (1, 2, 3)]
    assert maf == [D("30800.00"), D("28000.00"), D("1200.00")]
    assert lf.year("P").assistance_cap_used == D("60000.00")


# ---- 二(四)2 low_income_applicant ------------------------------------------------------------------------

def test_linfen_2_4_2_low_income_applicant_40_percent_above_20000_own_cap_10000(lf):
    """临汾 二(四)2: 40% of the cumulative annual remaining above 20,000, 年度封顶线1万元.
    Each stay: in_scope 50,000, hifp 20,000 → oop 30,000 (base 大病, D 10,000, 60%).
    S1: 大病 0.60 × 20,000 = 12,000; r 18,000; cumulative 18,000 < 20,000 → 0.
    S2: 大病 0.60 × 30,000 = 18,000; r 12,000; 0.40 × (30,000 − 20,000) = 4,000.00.
    S3: r 12,000 all above → 4,800.00 (8,800 so far).
    S4: 4,800 but 10,000 − 8,800 = 1,200.00 left on the line's own cap."""
    with_status(lf, "low_income_applicant")
    maf = [D(lf.one(lf_stay(f"S{i}", in_scope="50000", hifp="20000"))["maf_pay"]) for i in (1, 2, 3, 4)]
    assert maf == [0, D("4000.00"), D("4800.00"), D("1200.00")]
    y = lf.year("P")
    assert y.own_used["linfen.inpatient.low_income_applicant"] == D("10000.00")
    assert y.assistance_cap_used == D("10000.00")      # also counts against the shared 60,000


# ---- 二(四)3 Gaucher / Pompe ------------------------------------------------------------------------------

def test_linfen_2_4_3_gaucher_70_percent_of_compliant_cost_left(lf):
    """临汾 二(四)3: 70% of compliant cost left after every other payment. dibao with 戈谢病 (E75.2):
    oop 50,000; 大病 tilt 0.80 × 45,000 = 36,000; r 14,000; dibao 0.70 × 14,000 = 9,800;
    left 14,000 − 9,800 = 4,200 → 0.70 × 4,200 = 2,940.00. maf 12,740.00; psn 1,260.00."""
    with_status(lf, "dibao")
    r = lf.one(lf_stay("S1", in_scope="100000", hifp="50000", dise="E75.2", hospital="LF-NS"))
    assert figures(r) == (D("36000.00"), D("12740.00"), 0, D("1260.00"))
    g = line(r, "linfen.inpatient.gaucher_pompe")
    assert (D(g["base"]), D(g["amount"])) == (D("4200.00"), D("2940.00"))
    y = lf.year("P")
    assert y.own_used["linfen.inpatient.gaucher_pompe"] == D("2940.00")
    assert y.assistance_cap_used == D("9800.00")       # the Gaucher line has its own counter (§9)


def test_linfen_2_4_3_pompe_own_cap_60000(lf):
    """临汾 二(四)3 年度最高救助限额6万元, own counter. stable_out_of_poverty with 庞贝氏病 (E74.0):
    oop 200,000; 大病 base 0.60 × 190,000 = 114,000; r 86,000; 0.70 × 86,000 = 60,200 → 60,000.00.
    Next stay: the own cap is used up: 0."""
    with_status(lf, "stable_out_of_poverty")
    r1 = lf.one(lf_stay("S1", in_scope="400000", hifp="200000", dise="E74.0"))
    r2 = lf.one(lf_stay("S2", in_scope="10000", hifp="0", dise="E74.0"))
    assert D(r1["maf_pay"]) == D("60000.00") and D(r2["maf_pay"]) == 0
    assert lf.year("P").assistance_cap_used == 0


def test_linfen_2_4_3_gaucher_needs_no_status(lf):
    """policy.md §12 replaces §11 for this line: every Gaucher/Pompe patient gets it, status or not.
    oop 50,000; 大病 0.60 × 40,000 = 24,000; remaining 26,000; 0.70 × 26,000 = 18,200.00."""
    r = lf.one(lf_stay("S1", in_scope="100000", hifp="50000", dise="E75.2"))
    assert (D(r["maf_pay"]), r["status"]) == (D("18200.00"), None)


# ---- 二(四)5 key_entitled ---------------------------------------------------------------------------------

def test_linfen_2_4_5_key_entitled_tops_veterans_subsidy_up_to_70_percent(lf):
    """临汾 二(四)5: veterans' subsidy (oth_pay) + assistance reaches 70% of remaining.
    oop 20,000 − 12,000 = 8,000; 大病 0 (< 10,000); r 8,000; 0.70 × 8,000 − 1,000 = 4,600.00;
    psn 20,000 − 12,000 − 1,000 − 4,600 = 2,400.00 (= 30% of r)."""
    with_status(lf, "key_entitled")
    r = lf.one(lf_stay("S1", in_scope="20000", hifp="12000", oth="1000"))
    assert figures(r) == (0, D("4600.00"), 0, D("2400.00"))
    assert (D(r["cap"]["limit"]), D(r["cap"]["used"])) == (D("60000"), D("4600.00"))
    assert line(r, "linfen.inpatient.key_entitled")


def test_linfen_2_4_5_key_entitled_nothing_when_veterans_subsidy_already_reaches_70_percent(lf):
    """oth_pay 6,000 ≥ 0.70 × 8,000 = 5,600 → assistance max(0, 5,600 − 6,000) = 0; psn 2,000.00."""
    with_status(lf, "key_entitled")
    r = lf.one(lf_stay("S1", in_scope="20000", hifp="12000", oth="6000"))
    assert figures(r) == (0, 0, 0, D("2000.00"))


# ---- 三(三) at_risk / monitored_hardship ------------------------------------------------------------------

@pytest.mark.parametrize("status", ["at_risk", "monitored_hardship"])
def test_linfen_3_3_70_percent_above_quarter_of_income(lf, status):
    """临汾 三(三): 70% of cumulative remaining above 25% × 27,426 = 6,856.50 (2021 income, used in 2022).
    S1: oop 10,000; 大病 0; r 10,000; 0.70 × (10,000 − 6,856.50) = 0.70 × 3,143.50 = 2,200.45.
    S2: oop 5,000; 大病 0.60 × (15,000 − 10,000) = 3,000; r 2,000, all above → 0.70 × 2,000 = 1,400.00.
    Limit 60,000 (shared): used 2,200.45 + 1,400 = 3,600.45."""
    with_status(lf, status)
    r1 = lf.one(lf_stay("S1", in_scope="20000", hifp="10000"))
    r2 = lf.one(lf_stay("S2", in_scope="10000", hifp="5000"))
    assert D(r1["maf_pay"]) == D("2200.45") and D(r2["maf_pay"]) == D("1400.00")
    assert (D(r2["cap"]["limit"]), D(r2["cap"]["used"])) == (D("60000"), D("3600.45"))
    assert r1["lines"][-1]["rule_id"] == "linfen.inpatient.at_risk_monitored"


# ---- 二(四)4 single-disease limit ---------------------------------------------------------------------------

def test_linfen_2_4_4_single_disease_10_percent_and_hospital_borne_over_limit(lf):
    """临汾 二(四)4: 肺癌 C34 limit 60,000 (pack table); illness_poverty 10%, uncapped.
    total 70,000 (in scope), hifp 42,000: oop 28,000; 大病 base 0.60 × 18,000 = 10,800; r 17,200.
    Single disease: 0.10 × min(70,000, 60,000) = 6,000.00. Over the limit 70,000 − 60,000 = 10,000.00
    borne by the hospital. psn = 70,000 − 42,000 − 10,800 − 6,000 − 10,000 = 1,200.00."""
    with_status(lf, "illness_poverty")
    r = lf.one(lf_stay("S1", in_scope="70000", hifp="42000", dise="C34.1"))
    assert figures(r) == (D("10800.00"), D("6000.00"), D("10000.00"), D("1200.00"))
    sd = line(r, "linfen.inpatient.single_disease")
    assert (D(sd["base"]), D(sd["ratio"])) == (D("60000"), D("0.10"))
    h = line(r, "linfen.hospital.single_disease_over_limit")
    assert (h["fund"], D(h["amount"])) == ("hospital", D("10000.00"))
    assert lf.year("P").assistance_cap_used == 0          # uncapped


def test_linfen_2_4_4_single_disease_low_income_applicant_10_percent(lf):
    """临汾 二(四)4: low_income_applicant 10%: same stay as above, the 二(四)2 line is 0 (r 17,200 < 20,000):
    0.10 × 60,000 = 6,000.00; hospital 10,000.00."""
    with_status(lf, "low_income_applicant")
    r = lf.one(lf_stay("S1", in_scope="70000", hifp="42000", dise="C34.1"))
    assert (D(r["maf_pay"]), D(r["hosp_part_amt"])) == (D("6000.00"), D("10000.00"))


def test_linfen_2_4_4_single_disease_dibao_20_percent_uncapped(lf):
    """临汾 二(四)4: dibao 20%. 终末期肾病 N18.5 limit 80,000. total 82,000 = in_scope 62,000 + ooc 20,000;
    hifp 40,000: oop 22,000; 大病 tilt 0.80 × 17,000 = 13,600; r 8,400; dibao 0.70 × 8,400 = 5,880.
    Single disease 0.20 × 80,000 = 16,000.00 (uncapped). ooc share 30% × 82,000 = 24,600 ≥ 20,000: no excess.
    Over the limit 82,000 − 80,000 = 2,000.00 by the hospital.
    psn = 82,000 − 40,000 − 13,600 − (5,880 + 16,000) − 2,000 = 4,520.00. Shared counter: 5,880 only."""
    with_status(lf, "dibao")
    r = lf.one(lf_stay("S1", total="82000", ooc="20000", in_scope="62000", hifp="40000", dise="N18.5"))
    assert figures(r) == (D("13600.00"), D("21880.00"), D("2000.00"), D("4520.00"))
    assert D(r["cap"]["used"]) == D("5880.00")
    assert D(line(r, "linfen.inpatient.single_disease")["amount"]) == D("16000.00")


def test_linfen_2_4_4_single_disease_needs_a_serious_disease_hospital(lf):
    """临汾 二(四)4: at a hospital not designated for the 26 diseases, no single-disease line and nothing over
    a limit borne by the hospital."""
    with_status(lf, "illness_poverty")
    r = lf.one(lf_stay("S1", in_scope="70000", hifp="42000", dise="C34.1", hospital="LF-NS"))
    assert (D(r["maf_pay"]), D(r["hosp_part_amt"])) == (0, 0)


# ---- 二(六) out-of-catalogue control ------------------------------------------------------------------------

@pytest.mark.parametrize("hospital, share, hosp, psn", [
    ("LF-I", "0.30", "1000.00", "3900.00"),     # 30% × 10,000 = 3,000; 4,000 − 3,000 = 1,000
    ("LF-II", "0.20", "2000.00", "2900.00"),    # 20% × 10,000 = 2,000; 4,000 − 2,000 = 2,000
    ("LF-III", "0.15", "2500.00", "2400.00"),   # 15% × 10,000 = 1,500; 4,000 − 1,500 = 2,500
])
def test_linfen_2_6_out_of_catalogue_control_30_20_15(lf, hospital, share, hosp, psn):
    """临汾 二(六) with §11: share = percentage × medfee_sumamt; the hospital bears max(0, ooc − share).
    dibao, total 10,000 = in_scope 6,000 + ooc 4,000; hifp 3,000: oop 3,000; 大病 0; r 3,000;
    dibao 0.70 × 3,000 = 2,100. psn = 10,000 − 3,000 − 2,100 − hospital."""
    with_status(lf, "dibao")
    r = lf.one(lf_stay("S1", total="10000", ooc="4000", in_scope="6000", hifp="3000", hospital=hospital))
    assert figures(r) == (0, D("2100.00"), D(hosp), D(psn))
    h = line(r, "linfen.hospital.ooc_control")
    assert (h["fund"], D(h["base"]), D(h["amount"])) == ("hospital", D("4000.00"), D(hosp))


def test_linfen_2_6_control_only_for_tekun_dibao_returned(lf):
    """临汾 二(六) names 特困、低保、返贫致贫 only: key_entitled pays its out-of-catalogue cost itself."""
    with_status(lf, "key_entitled")
    r = lf.one(lf_stay("S1", total="10000", ooc="4000", in_scope="6000", hifp="3000"))
    assert D(r["hosp_part_amt"]) == 0 and "linfen.hospital.ooc_control" not in rule_ids(r)


def test_linfen_2_6_control_only_in_province(lf):
    """临汾 二(六): in-province stays only. dibao out of province: no hospital share; psn 4,900.00."""
    with_status(lf, "dibao")
    r = lf.one(lf_stay("S1", total="10000", ooc="4000", in_scope="6000", hifp="3000", hospital="LF-OUT"))
    assert figures(r) == (0, D("2100.00"), 0, D("4900.00"))


def test_linfen_2_6_returned_poverty_85_percent_within_the_share(lf):
    """临汾 二(六): returned_poverty's out-of-catalogue cost within the share is assisted at 85% (2022–2025),
    beside the 90% top-up and not counted in it (§11).
    total 10,000 = in_scope 8,000 + ooc 2,000; hifp 4,000: oop 4,000; 大病 0; r 4,000.
    Top-up: max(0.7 × 4,000 = 2,800, 0.9 × 8,000 − 4,000 − 0 = 3,200) = 3,200.
    Share 30% × 10,000 = 3,000 ≥ 2,000: 0.85 × 2,000 = 1,700.00; no hospital part.
    maf 4,900.00; psn 10,000 − 4,000 − 4,900 = 1,100.00."""
    with_status(lf, "returned_poverty")
    r = lf.one(lf_stay("S1", total="10000", ooc="2000", in_scope="8000", hifp="4000", hospital="LF-NS"))
    assert figures(r) == (0, D("4900.00"), 0, D("1100.00"))
    o = line(r, "linfen.inpatient.returned_poverty_ooc")
    assert (D(o["base"]), D(o["ratio"]), D(o["amount"])) == (D("2000.00"), D("0.85"), D("1700.00"))
    assert D(line(r, "linfen.inpatient.returned_poverty")["amount"]) == D("3200.00")


def test_linfen_2_6_returned_poverty_85_percent_on_the_share_and_hospital_bears_the_excess(lf):
    """total 10,000 = in_scope 6,000 + ooc 4,000; hifp 3,000: r 3,000; top-up max(2,100, 5,400 − 3,000) = 2,400.
    Share 3,000: 0.85 × min(4,000, 3,000) = 2,550.00; hospital 4,000 − 3,000 = 1,000.00.
    psn = 10,000 − 3,000 − (2,400 + 2,550) − 1,000 = 1,050.00 (600 in scope + 450 out of catalogue)."""
    with_status(lf, "returned_poverty")
    r = lf.one(lf_stay("S1", total="10000", ooc="4000", in_scope="6000", hifp="3000", hospital="LF-NS"))
    assert figures(r) == (0, D("4950.00"), D("1000.00"), D("1050.00"))


def test_linfen_2_6_returned_poverty_85_percent_only_in_the_transition_period():
    """临汾 二(六) 过渡期 2022–2025: in 2026 the 85% line stops; the hospital control stays.
    Same stay as above in 2026: maf 2,400.00 only; hospital 1,000.00; psn 3,600.00.
    (The shipped pack has no 2026 income figure for the 三(三) warning: a pack extended with one.)"""
    lf = Ledger(with_income(2026, "30000"))
    lf.send(medins("LF-NS", serious=False), enrolment("P", year=2026, std="400"))
    with_status(lf, "returned_poverty")
    r = lf.one(lf_stay("S1", total="10000", ooc="4000", in_scope="6000", hifp="3000", hospital="LF-NS",
                       enddate="2026-03-10"))
    assert figures(r) == (0, D("2400.00"), D("1000.00"), D("3600.00"))
    assert "linfen.inpatient.returned_poverty_ooc" not in rule_ids(r)


def test_no_status_gets_no_out_of_catalogue_control(lf):
    """policy.md §11: 'no status' gets no assistance and no out-of-catalogue control."""
    r = lf.one(lf_stay("S1", total="10000", ooc="4000", in_scope="6000", hifp="3000"))
    assert figures(r) == (0, 0, 0, D("7000.00")) and r["cap"] is None
