"""policy.md §3 资助参保: one subsidy per enrolment, the single most favourable status (§9), never above std."""
from __future__ import annotations

import pytest

from builders import LINFEN, QINGHAI, enrolment, identity
from harness import D


def subsidy_for(ledger, statuses, *, admdvs=LINFEN, **enrol) -> dict:
    for status in statuses:
        ledger.one(identity("P", status, admdvs=admdvs))
    result = ledger.one(enrolment("P", admdvs=admdvs, **enrol))
    assert result["msg_type"] == "subsidy_result"
    return result


# ---- Qinghai 三(一) ---------------------------------------------------------------------------------------

def test_qinghai_3_1_dibao_marginal_minor_gets_half_of_std(ledger):
    """青海 三(一): 低保边缘家庭成员中的未成年人 50% × std.
    Born 2010-03-01: age on 2022-01-01 is 11 (< 18). 50% × 350 = 175.00."""
    r = subsidy_for(ledger, ["dibao_marginal"], admdvs=QINGHAI, brdy="2010-03-01")
    assert (r["result"], r["status"], D(r["subsidy"]), r["fund"]) == ("settled", "dibao_marginal", D("175.00"), "assistance")
    assert r["rule_id"] == "qinghai.subsidy.dibao_marginal_minor"


@pytest.mark.parametrize("brdy, subsidy", [
    ("2004-01-02", "175.00"),   # 17 on 2022-01-01 (birthday not yet reached): minor → 0.5 × 350
    ("2004-01-01", "0"),        # 18 on 2022-01-01: an adult, no subsidy (policy.md §11 age rule)
    ("1980-06-01", "0"),
])
def test_qinghai_3_1_dibao_marginal_minor_is_told_by_age_on_1_january(ledger, brdy, subsidy):
    """青海 三(一) with policy.md §11: minor = age < 18 on 1 January of the policy year."""
    r = subsidy_for(ledger, ["dibao_marginal"], admdvs=QINGHAI, brdy=brdy)
    assert D(r["subsidy"]) == D(subsidy)
    if subsidy == "0":
        assert r["result"] == "settled" and r["reason"]["code"] == "no_subsidy" and r["reason"]["message"]


@pytest.mark.parametrize("year, std, subsidy", [
    (2022, "350", "280.00"),    # 80% × 350
    (2023, "380", "266.00"),    # 70% × 380
    (2024, "400", "240.00"),    # 60% × 400
    (2025, "400", "200.00"),    # 50% × 400
    (2026, "400", "0"),         # none after 2025
])
def test_qinghai_3_1_rural_at_risk_tapers_80_70_60_50_then_stops(ledger, year, std, subsidy):
    """青海 三(一): 农村易返贫致贫人口 2022 80%, 2023 70%, 2024 60%, 2025 50% of std; none after 2025."""
    r = subsidy_for(ledger, ["rural_at_risk"], admdvs=QINGHAI, year=year, std=std)
    assert D(r["subsidy"]) == D(subsidy)
    if subsidy != "0":
        assert r["rule_id"] == "qinghai.subsidy.rural_at_risk" and r["status"] == "rural_at_risk"


@pytest.mark.parametrize("status, subsidy, rule", [
    ("tekun", "350.00", "qinghai.subsidy.tekun_orphan"),             # 100% × 350 (policy.md §10 default)
    ("orphan", "350.00", "qinghai.subsidy.tekun_orphan"),            # 100% × 350
    ("de_facto_orphan", "350.00", "qinghai.subsidy.tekun_orphan"),   # treated as orphan (§2)
    ("hiv_child", "350.00", "qinghai.subsidy.tekun_orphan"),         # treated as orphan (§2)
    ("dibao", "280.00", "qinghai.subsidy.dibao"),                    # 80% × 350
    ("returned_poverty", "280.00", "qinghai.subsidy.returned_poverty"),  # 80% × 350
])
def test_qinghai_3_1_configurable_defaults_of_policy_md_10(ledger, status, subsidy, rule):
    """青海 三(一) 'others [configurable, not in text]' with the defaults of policy.md §10."""
    r = subsidy_for(ledger, [status], admdvs=QINGHAI)
    assert (r["status"], D(r["subsidy"]), r["rule_id"]) == (status, D(subsidy), rule)


def test_qinghai_3_1_low_income_has_no_subsidy_and_says_why(ledger):
    """青海 三(一): low_income (not a minor of a 低保边缘 family) has no subsidy row: 0 with a reason."""
    r = subsidy_for(ledger, ["low_income"], admdvs=QINGHAI)
    assert (r["result"], D(r["subsidy"]), r["fund"]) == ("settled", D("0"), None)
    assert r["reason"]["code"] == "no_subsidy"


# ---- Linfen 二(一) ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("status, std, subsidy, rule", [
    ("tekun", "320", "320.00", "linfen.subsidy.tekun"),                        # 100% × 320
    ("returned_poverty", "320", "288.00", "linfen.subsidy.returned_poverty"),  # 90% × 320
    ("dibao", "320", "280.00", "linfen.subsidy.dibao"),             # max(80% × 320 = 256, 280) = 280
    ("dibao", "380", "304.00", "linfen.subsidy.dibao"),             # max(80% × 380 = 304, 280) = 304
    ("at_risk", "320", "280.00", "linfen.subsidy.at_risk"),         # 280 fixed
    ("severe_disability", "320", "160.00", "linfen.subsidy.disability_elderly_minor"),   # 50% × 320
    ("low_income_elderly", "320", "160.00", "linfen.subsidy.disability_elderly_minor"),  # 50% × 320
    ("low_income_minor", "320", "160.00", "linfen.subsidy.disability_elderly_minor"),    # 50% × 320
])
def test_linfen_2_1_subsidy_rows(ledger, status, std, subsidy, rule):
    """临汾 二(一): one row per status of policy.md §3."""
    r = subsidy_for(ledger, [status], std=std)
    assert (r["result"], r["status"], D(r["subsidy"]), r["rule_id"], r["fund"]) == (
        "settled", status, D(subsidy), rule, "assistance")


@pytest.mark.parametrize("status", ["key_entitled", "stable_out_of_poverty"])
def test_linfen_2_1_key_entitled_and_stable_out_of_poverty_get_nothing_with_a_reason(ledger, status):
    """临汾 二(一): 重点优抚对象 are paid by veterans' affairs; 稳定脱贫人口 no longer subsidised.
    policy.md §11: a zero subsidy is `settled`, subsidy 0, with a reason naming why."""
    r = subsidy_for(ledger, [status])
    assert (r["result"], r["status"], D(r["subsidy"]), r["fund"]) == ("settled", status, D("0"), None)
    assert r["reason"]["code"] == "no_subsidy" and status in r["reason"]["message"]


@pytest.mark.parametrize("year, subsidy", [(2025, "280.00"), (2026, "0")])
def test_linfen_2_1_at_risk_fixed_280_only_2022_to_2025(ledger, year, subsidy):
    """临汾 二(一): 易返贫致贫人口 280 fixed, 2022–2025."""
    r = subsidy_for(ledger, ["at_risk"], year=year, std="400")
    assert D(r["subsidy"]) == D(subsidy)


@pytest.mark.parametrize("status, subsidy", [
    ("dibao", "250.00"),     # max(80% × 250 = 200, 280) = 280, then never more than std 250
    ("at_risk", "250.00"),   # 280 fixed, never more than std 250
])
def test_linfen_2_1_never_more_than_std(ledger, status, subsidy):
    """policy.md §3: 'Never more than std'."""
    assert D(subsidy_for(ledger, [status], std="250")["subsidy"]) == D(subsidy)


def test_subsidy_takes_the_single_most_favourable_status(ledger):
    """policy.md §9 就高不就低: dibao 280 beats severe_disability 160; benefits never stack."""
    r = subsidy_for(ledger, ["severe_disability", "dibao"])
    assert (r["status"], D(r["subsidy"])) == ("dibao", D("280.00"))


def test_subsidy_tie_goes_to_the_status_listed_first(ledger):
    """policy.md §9: low_income_elderly and severe_disability both give 50% × 320 = 160; §2 lists
    severe_disability first."""
    r = subsidy_for(ledger, ["low_income_elderly", "severe_disability"])
    assert (r["status"], D(r["subsidy"])) == ("severe_disability", D("160.00"))


def test_subsidy_uses_statuses_valid_on_the_enrol_date(ledger):
    """policy.md §11: for enrolment, `enrol_date` decides status validity. tekun from 2022-02-01 does not
    count for an enrolment on 2022-01-05."""
    ledger.one(identity("P", "tekun", begndate="2022-02-01"))
    r = ledger.one(enrolment("P", enrol_date="2022-01-05"))
    assert D(r["subsidy"]) == 0 and r["status"] is None


def test_employees_get_no_subsidy(ledger):
    """policy.md §11: employees (insutype 310) get no subsidy from this ledger, even with a status."""
    r = subsidy_for(ledger, ["tekun"], insutype="310")
    assert (r["result"], D(r["subsidy"]), r["status"]) == ("settled", D("0"), None)
    assert "310" in r["reason"]["message"]


def test_no_status_gets_zero_with_a_reason(ledger):
    r = ledger.one(enrolment("P"))
    assert (r["result"], D(r["subsidy"]), r["status"], r["reason"]["code"]) == ("settled", D("0"), None, "no_subsidy")


def test_green_channel_open_to_assistance_targets(ledger):
    """青海 七(二) 绿色通道: outside the normal period an assistance target is accepted."""
    r = subsidy_for(ledger, ["dibao"], admdvs=QINGHAI, in_normal_period=False)
    assert (r["result"], D(r["subsidy"])) == ("settled", D("280.00"))


def test_green_channel_closed_to_others(ledger):
    """policy.md §3: others outside the normal contribution period are rejected with a clear reason."""
    r = ledger.one(enrolment("P", admdvs=QINGHAI, in_normal_period=False))
    assert r["result"] == "rejected" and r["reason"]["code"] == "outside_green_channel"
    assert "绿色通道" in r["reason"]["message"]
    assert 2022 not in ledger.person("P").enrolments          # nothing half-applied
