"""Old event shapes still decode: the fast path for current events, upcasters for replaced types."""
import msgspec

from events import ledger as ev
from events.upcast import UPCASTERS, decode_commit, register


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
