"""Old event shapes still decode: the fast path for current events, upcasters for replaced types."""
import datetime as dt
from decimal import Decimal as D

import msgspec
import pytest

from events import ledger as ev
from events.messages import Settlement
from events.upcast import (FLAT_HOSPITAL, FLAT_SETTLEMENT, UPCASTERS, decode_commit, decode_event, register,
                           tags_of)


def test_current_commit_decodes_on_the_fast_path():
    commit = ev.Commit("c1", "c1", [ev.YearClosed(admdvs="141000", year=2022)])
    assert decode_commit(ev.COMMIT_ENCODER.encode(commit)) == commit


def test_a_replaced_event_type_is_upcast_on_read():
    @register("year_closed_v0")
    def _v0(old):
        return {"type": "year_closed", "admdvs": old["area"], "year": old["year"]}

    try:
        raw = msgspec.json.encode({"commit_id": "c1", "correlation_id": "c1",
                                   "events": [{"type": "year_closed_v0", "area": "630000", "year": 2022}]})
        commit = decode_commit(raw)
        assert commit.events == [ev.YearClosed(admdvs="630000", year=2022)]
    finally:
        UPCASTERS.pop("year_closed_v0")


# A settlement facts event as the ledger wrote it before ADR 0017 (flat, and before `after_year_close` and
# `ci_deductible` were added), written out by hand.
FLAT_STAY = {
    "type": "hospital_stay_settled", "event_id": "e-1", "correlation_id": "c-1", "causation_id": "m-1",
    "pack": "linfen-2022", "pack_version": "1", "recorded_at": "2022-03-10T02:00:00Z", "prev_hash": "p" * 64,
    "hash": "h" * 64,
    "setl_id": "S1", "mdtrt_id": "M1", "psn_no": "P1", "admdvs": "141002", "year": 2022, "insutype": "390",
    "med_type": "21", "chronic_mgmt": None, "special_drug": False, "fixmedins_code": "H1", "designated": True,
    "in_province": True, "ooc_class": "II_city", "serious_disease_designated": False, "begndate": "2022-03-01",
    "enddate": "2022-03-10", "setl_time": "2022-03-10T10:00:00+08:00", "dise_codg": "J18.9",
    "medfee_sumamt": "20000.00", "fulamt_ownpay_amt": "1000.00", "inscp_scp_amt": "19000.00",
    "hifp_pay": "11400.00", "oth_pay": "0", "status": "dibao", "oop": "8600.00", "remaining": "8600.00",
    "ci_base_before": "0", "ci_base_added": "8600.00", "assist_base_before": "0", "assist_base_added": "8600.00",
    "quota_base": "0", "hifmi_pay": "0", "maf_pay": "5160.00", "hosp_part_amt": "0", "psn_part_amt": "3440.00",
}


def _commit_of(*events: dict) -> bytes:
    return msgspec.json.encode({"commit_id": "c-1", "correlation_id": "c-1", "events": list(events)})


def test_flat_settlement_facts_are_read_as_the_embedding_facts():
    commit = decode_commit(_commit_of(FLAT_STAY))
    facts = commit.events[0]
    assert type(facts) is ev.HospitalStaySettled and ev.event_type(facts) == "hospital_stay_settled_v2"
    assert facts.settlement == Settlement(
        setl_id="S1", mdtrt_id="M1", psn_no="P1", admdvs="141002", insutype="390", med_type="21",
        fixmedins_code="H1", begndate=dt.date(2022, 3, 1), enddate=dt.date(2022, 3, 10),
        setl_time=dt.datetime(2022, 3, 10, 10, tzinfo=dt.timezone(dt.timedelta(hours=8))), dise_codg="J18.9",
        medfee_sumamt=D("20000.00"), fulamt_ownpay_amt=D("1000.00"), inscp_scp_amt=D("19000.00"),
        hifp_pay=D("11400.00"), oth_pay=D("0"), chronic_mgmt=None, special_drug=False)
    assert facts.hospital == ev.Hospital(designated=True, in_province=True, ooc_class="II_city",
                                         serious_disease_designated=False)
    assert (facts.setl_id, facts.psn_no, facts.year, facts.status) == ("S1", "P1", 2022, "dibao")
    assert (facts.oop, facts.remaining, facts.ci_base_added, facts.assist_base_added, facts.maf_pay,
            facts.psn_part_amt) == (D("8600.00"), D("8600.00"), D("8600.00"), D("8600.00"), D("5160.00"),
                                    D("3440.00"))
    assert facts.after_year_close is False and facts.ci_deductible is None      # added later: the defaults
    # The envelope is as stored: the chain and the seal check the stored bytes, which name these hashes.
    assert (facts.event_id, facts.prev_hash, facts.hash, facts.pack) == ("e-1", "p" * 64, "h" * 64, "linfen-2022")
    assert decode_event(msgspec.json.encode(FLAT_STAY)) == facts


def test_the_upcaster_moves_every_flat_field_once_and_keeps_the_rest():
    flat = {**FLAT_STAY, "type": "outpatient_visit_settled", "med_type": "14", "chronic_mgmt": "quota",
            "after_year_close": True, "ci_deductible": "10000.00"}
    new = UPCASTERS["outpatient_visit_settled"](dict(flat))
    assert new["type"] == "outpatient_visit_settled_v2"
    assert set(new["settlement"]) == {"msg_type", *FLAT_SETTLEMENT}
    assert set(new["hospital"]) == set(FLAT_HOSPITAL)
    kept = set(flat) - set(FLAT_SETTLEMENT) - set(FLAT_HOSPITAL) | {"setl_id", "psn_no"}
    assert set(new) == kept | {"settlement", "hospital"}
    facts = decode_commit(_commit_of(flat)).events[0]
    assert type(facts) is ev.OutpatientVisitSettled and facts.settlement.chronic_mgmt == "quota"
    assert facts.after_year_close is True and facts.ci_deductible == D("10000.00")
    # Stored the new way, the same facts come back on the fast path, with the new tag.
    stored = ev.COMMIT_ENCODER.encode(ev.Commit("c-1", "c-1", [facts]))
    assert b'"outpatient_visit_settled_v2"' in stored and decode_commit(stored).events == [facts]


def test_without_the_upcaster_the_flat_facts_do_not_decode(monkeypatch):
    monkeypatch.delitem(UPCASTERS, "hospital_stay_settled")
    with pytest.raises(msgspec.ValidationError):
        decode_commit(_commit_of(FLAT_STAY))


def test_a_replaced_type_is_found_by_either_tag():
    assert tags_of("hospital_stay_settled") == tags_of("hospital_stay_settled_v2") == [
        "hospital_stay_settled_v2", "hospital_stay_settled"]
    assert tags_of("year_closed") == ["year_closed"]
