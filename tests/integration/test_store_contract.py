"""The `Store` contract (services/adjudicator/store.py), one suite for both stores, as pyeventsourcing runs
one recorder suite against each recorder: the memory store that replay, audits and unit tests use must
behave as the JetStream store the servers use — same conflicts, same key claims, same reads."""
from __future__ import annotations

import copy
import datetime as dt
import itertools
from collections.abc import AsyncIterator

import msgspec
import nats
import pytest

from events.messages import DECODER
from events import samples as s
from services.nats.store import JetStreamStore
from services.memory.store import MemoryStore
from services.adjudicator.store import Conflict
from services.policy.decision import Context, Decision
from services.policy.engine import Engine
from services.policy.pack import PackSet
from services.nats.streams import ensure_ledger_stream

SECRET = b"store-contract-secret-0123456789"
ENGINE = Engine(PackSet.from_dir())
_ids = itertools.count(1)


@pytest.fixture(params=["memory", "jetstream"])
async def store(request, fresh_nats_url: str) -> AsyncIterator:
    if request.param == "memory":
        yield MemoryStore()
        return
    nc = await nats.connect(fresh_nats_url)
    js = nc.jetstream()
    await ensure_ledger_stream(js)
    jss = JetStreamStore(js, SECRET, seal_key=b"store-contract-seal-key-0123456789", ref_poll_every=0.2)
    await jss.start()
    try:
        yield jss
    finally:
        await jss.close()
        await nc.close()


def ctx() -> Context:
    return Context(now=dt.datetime(2022, 12, 1, tzinfo=dt.timezone.utc), correlation_id=f"c{next(_ids)}")


async def decide(store, message: dict, person=None) -> tuple[Decision, object]:
    inbound = DECODER.decode(msgspec.json.encode(message))
    psn_no = message.get("psn_no")
    if person is None and psn_no:
        person = await store.person(psn_no)
    return ENGINE.decide(inbound, person, await store.reference(refresh=True), ctx()), person


async def apply(store, message: dict) -> Decision:
    decision, person = await decide(store, message)
    await store.append(decision, person)
    return decision


async def test_a_new_person_is_empty_and_an_append_is_read_back(store) -> None:
    person = await store.person("C-1")
    assert (person.psn_no, person.version, person.settlements) == ("C-1", 0, {})
    await apply(store, s.medins())
    await apply(store, s.enrolment("C-1"))
    await apply(store, s.settlement("S-1", "C-1"))
    store.forget("C-1")
    again = await store.person("C-1")
    assert again.version > 0 and list(again.settlements) == ["S-1"] and 2022 in again.enrolments


async def test_a_decision_on_stale_state_loses_with_conflict(store) -> None:
    await apply(store, s.medins())
    await apply(store, s.enrolment("C-2"))
    person = await store.person("C-2")
    stale = copy.deepcopy(person)
    first, _ = await decide(store, s.settlement("S-A", "C-2"), person)
    late, _ = await decide(store, s.settlement("S-B", "C-2"), stale)
    await store.append(first, person)
    with pytest.raises(Conflict):
        await store.append(late, stale)
    store.forget("C-2")
    assert list((await store.person("C-2")).settlements) == ["S-A"]


async def test_a_global_key_is_held_by_one_person(store) -> None:
    await apply(store, s.medins())
    for psn in ("K-A", "K-B"):
        await apply(store, s.enrolment(psn))
    key = ("setl_id", "S-SHARED")
    await apply(store, s.settlement("S-SHARED", "K-A"))
    refused, person = await decide(store, s.settlement("S-SHARED", "K-B"))
    assert refused.claims == [key]
    with pytest.raises(Conflict):
        await store.append(refused, person)
    assert await store.key_taken(key, "K-B", fresh=True)
    assert not await store.key_taken(key, "K-A", fresh=True)
    store.forget("K-B")
    assert (await store.person("K-B")).settlements == {}


async def test_a_copy_of_current_state_is_not_stale(store) -> None:
    """Both stores guard by the version decided on, not by which object holds it."""
    await apply(store, s.medins())
    await apply(store, s.enrolment("V-1"))
    snapshot = copy.deepcopy(await store.person("V-1"))
    decision, _ = await decide(store, s.settlement("S-V", "V-1"), snapshot)
    await store.append(decision, snapshot)
    store.forget("V-1")
    assert list((await store.person("V-1")).settlements) == ["S-V"]


async def test_a_duplicate_stores_nothing(store) -> None:
    await apply(store, s.medins())
    await apply(store, s.enrolment("D-1"))
    await apply(store, s.settlement("S-D", "D-1"))
    version = (await store.person("D-1")).version
    again = await apply(store, s.settlement("S-D", "D-1"))
    assert again.events == [] and again.results[0].result == "duplicate"
    store.forget("D-1")
    assert (await store.person("D-1")).version == version


async def test_reference_data_and_persons_due_at_year_end(store) -> None:
    await apply(store, s.medins("H-REF"))
    assert "H-REF" in (await store.reference(refresh=True)).hospitals
    await apply(store, s.medins())
    await apply(store, s.identity("Q-1", "dibao"))
    await apply(store, s.enrolment("Q-1"))
    await apply(store, s.settlement("V-Q", "Q-1", med_type="14", chronic_mgmt="quota", total="500.00", ooc="0"))
    await apply(store, s.enrolment("Q-2"))
    due = [psn async for psn in store.persons_due(s.AREA, 2022)]
    assert "Q-1" in due


async def _ready(store, *psns: str) -> None:
    await apply(store, s.medins())
    for psn in psns:
        await apply(store, s.enrolment(psn))


async def test_a_batch_stores_every_member_and_reads_back(store) -> None:
    await _ready(store, "B-1", "B-2", "B-3")
    pairs = [await decide(store, s.settlement(f"S-B{i}", f"B-{i}")) for i in (1, 2, 3)]
    assert all(d.claims for d, _ in pairs)
    await store.append_batch(pairs)
    for i in (1, 2, 3):
        store.forget(f"B-{i}")
        assert list((await store.person(f"B-{i}")).settlements) == [f"S-B{i}"]
    again, person = await decide(store, s.settlement("S-B1", "B-2"))   # the batch's claims hold
    with pytest.raises(Conflict):
        await store.append(again, person)


async def test_one_stale_member_fails_the_whole_batch(store) -> None:
    await _ready(store, "BS-1", "BS-2")
    fresh = await decide(store, s.settlement("S-BS1", "BS-1"))
    person = await store.person("BS-2")
    stale = copy.deepcopy(person)
    await apply(store, s.settlement("S-BS2a", "BS-2"))                 # moves BS-2 on after `stale`
    late = await decide(store, s.settlement("S-BS2b", "BS-2"), stale)
    with pytest.raises(Conflict):
        await store.append_batch([fresh, late])
    for psn in ("BS-1", "BS-2"):
        store.forget(psn)
    assert (await store.person("BS-1")).settlements == {}
    assert list((await store.person("BS-2")).settlements) == ["S-BS2a"]
    assert not await store.key_taken(("setl_id", "S-BS1"), "BS-2", fresh=True)   # nothing of it was stored


async def test_a_taken_key_fails_the_whole_batch(store) -> None:
    await _ready(store, "BK-1", "BK-2", "BK-3")
    await apply(store, s.settlement("S-HELD", "BK-1"))
    other = await decide(store, s.settlement("S-BK2", "BK-2"))
    thief = await decide(store, s.settlement("S-HELD", "BK-3"))        # decided before it knew the holder
    with pytest.raises(Conflict):
        await store.append_batch([other, thief])
    for psn in ("BK-2", "BK-3"):
        store.forget(psn)
        assert (await store.person(psn)).settlements == {}
    assert not await store.key_taken(("setl_id", "S-BK2"), "BK-3", fresh=True)
