"""Hypothesis-made bytes and JSON on every `ledger.rpc.*` and `platform.in.*` subject of a running ledger.

One subject per msg_type of integration.md §1 plus unknown ones. Each message that is not a valid message
gets its `rejected` result (the reply on request/reply, a `ledger.out.*` message on the feed) and exactly
one dead letter on `ledger.ref.rejected` holding its bytes as sent; none is left unanswered, and the
ledger still decides a good message afterwards.
"""
from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from typing import Any

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import codes
from events import ledger as ev
from fuzz_budget import PHASES, Budget
from ledger_support import Collector, rpc, running_ledger
from events import samples as s
from services.runtime.embedded import start_nats
from services.nats.reads import last_subject_sequence, read_subject

EXAMPLES = int(os.environ.get("LEDGER_FUZZ_NATS_EXAMPLES", "60"))
_BUDGET = Budget(float(os.environ.get("LEDGER_FUZZ_NATS_SECONDS", "inf")))   # make test: bounded by EXAMPLES
MSG_TYPES = ("medins", "psn_identity", "enrolment", "settlement", "settlement_cancel", "year_close", "tilted_grant")
UNKNOWN = ("teleport", "settlement_result", "unknown", "X-1")
FIELDS = ("msg_type", "psn_no", "setl_id", "mdtrt_id", "admdvs", "year", "status", "action", "begndate", "enddate",
          "fixmedins_code", "medfee_sumamt", "hifp_pay", "cancel_time", "grant_id", "amount", "insutype", "med_type")
REJECTED = "ledger.ref.rejected"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=24),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=16)


def _payloads(msg_type: str) -> st.SearchStrategy[bytes]:
    """Raw bytes; any JSON; and objects tagged with this subject's msg_type, with some of its fields."""
    tagged = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8).map(
        lambda d: json.dumps({"msg_type": msg_type, **d}).encode())
    return st.one_of(st.binary(max_size=256), json_values.map(lambda v: json.dumps(v).encode()), tagged)


@dataclass
class FuzzEnv:
    nc: Any               # as the platform: requests, feeds, results
    js: Any               # the platform's JetStream (publishes on platform.in)
    ledger_js: Any        # as the services: the stream's dead letters
    out: Collector
    ids: Any
    seen: dict[str, int]


@pytest.fixture(scope="module")
async def fuzz_env(tmp_path_factory: pytest.TempPathFactory):
    server = start_nats(tmp_path_factory.mktemp("nats-fuzz"), port=0)
    nc = await nats.connect(server.url_for("platform"))
    services = await nats.connect(server.url)
    try:
        async with running_ledger(server.url, tmp_path_factory.mktemp("fuzz-data")):
            assert (await rpc(nc, s.dumps(s.medins()), "medins"))["result"] == "recorded"
            out = await Collector().start(nc)
            yield FuzzEnv(nc, nc.jetstream(), services.jetstream(), out, itertools.count(),
                          {"rejected": 0, "accepted": 0})
    finally:
        await nc.close()
        await services.close()
        server.stop()


async def _answer(env: FuzzEnv, transport: str, msg_type: str, raw: bytes) -> tuple[str, dict]:
    if transport == "rpc":
        subject = f"ledger.rpc.{msg_type}"
        reply = await env.nc.request(subject, raw, timeout=15)
        return subject, json.loads(reply.data)
    subject, msg_id = f"platform.in.{msg_type}", f"fuzz-{next(env.ids)}"
    await env.js.publish(subject, raw, headers={"Nats-Msg-Id": msg_id})
    mine = lambda msgs: [m for m in msgs if (m.headers or {}).get("Ledger-Msg-Id") == msg_id]  # noqa: E731
    await env.out.wait_for(lambda msgs: bool(mine(msgs)), timeout=15)
    found = mine(env.out.msgs)
    assert len(found) == 1 and found[0].subject.startswith("ledger.out.")
    return subject, json.loads(found[0].data)


@settings(max_examples=EXAMPLES, deadline=None, database=None, phases=PHASES, report_multiple_bugs=False,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_fuzzed_messages_are_rejected_dead_lettered_and_answered(fuzz_env: FuzzEnv, data) -> None:
    msg_type = data.draw(st.sampled_from(MSG_TYPES + UNKNOWN), label="subject")
    transport = data.draw(st.sampled_from(("rpc", "feed")), label="transport")
    raw = data.draw(_payloads(msg_type), label="raw")
    with _BUDGET.example():
        before = await last_subject_sequence(fuzz_env.ledger_js, REJECTED)
        subject, result = await _answer(fuzz_env, transport, msg_type, raw)
        assert result.get("result") != "error", result                    # decided, not "unavailable"
        letters = [e for m in await read_subject(fuzz_env.ledger_js, REJECTED, after_seq=before)
                   for e in ev.COMMIT_DECODER.decode(m.data).events if isinstance(e, ev.MessageRejected)]
        if result["result"] == "rejected":
            fuzz_env.seen["rejected"] += 1
            assert result["reason"]["code"] in codes.ALL and result["reason"]["message"]
            code = result["reason"]["code"]
            assert [(e.raw, e.source, e.code) for e in letters] == [(raw, f"nats:{subject}", code)]
        else:                                                             # a valid message by chance: decided
            fuzz_env.seen["accepted"] += 1
            assert letters == []


async def test_the_ledger_still_decides_after_the_fuzzing(fuzz_env: FuzzEnv) -> None:
    assert fuzz_env.seen["rejected"] > min(EXAMPLES // 2, 20), fuzz_env.seen
    nc = fuzz_env.nc
    assert (await rpc(nc, s.dumps(s.identity("FZ-1", "dibao")), "psn_identity"))["result"] == "recorded"
    assert (await rpc(nc, s.dumps(s.enrolment("FZ-1")), "enrolment"))["result"] == "settled"
    assert (await rpc(nc, s.dumps(s.settlement("FZ-S1", "FZ-1", total="30000.00"))))["result"] == "settled"
    msg_id = "after-fuzz"
    await fuzz_env.js.publish("platform.in.settlement", s.dumps(s.settlement("FZ-S2", "FZ-1")),
                              headers={"Nats-Msg-Id": msg_id})
    await fuzz_env.out.wait_for(lambda msgs: any((m.headers or {}).get("Ledger-Msg-Id") == msg_id for m in msgs))


async def test_deeply_nested_json_is_rejected_and_dead_lettered(fuzz_env: FuzzEnv) -> None:
    raw = b"[" * 100_000
    before = await last_subject_sequence(fuzz_env.ledger_js, REJECTED)
    reply = json.loads((await fuzz_env.nc.request("ledger.rpc.settlement", raw, timeout=15)).data)
    assert reply["result"] == "rejected" and reply["reason"]["code"] == codes.INVALID_MESSAGE, reply
    letters = await read_subject(fuzz_env.ledger_js, REJECTED, after_seq=before)
    assert len(letters) == 1
