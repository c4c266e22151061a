"""The running ledger on a real nats-server: three ways in, one decision path, durable answers."""
from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx

from events import codes
from events.results import encode_result
from ledger_support import (REPO, Clock, Collector, person_from_stream, rejected_events, rpc, running_ledger)
from events import samples as s
from services.adjudicator.service import peek
from services.api.app import ApiDeps, create_app
from services.cli.replay import replay_handler
from services.nats.feed_config import FeedConfig
from services.policy.engine import Engine
from services.policy.pack import PackSet


async def test_request_reply_round_trip(fresh_nats_url: str, fresh_platform_nc, tmp_path: Path) -> None:
    async with running_ledger(fresh_nats_url, tmp_path):
        assert (await rpc(fresh_platform_nc, s.dumps(s.medins()), "medins"))["result"] == "recorded"
        assert (await rpc(fresh_platform_nc, s.dumps(s.identity("R1", "dibao")), "psn_identity"))["result"] == "recorded"
        subsidy = await rpc(fresh_platform_nc, s.dumps(s.enrolment("R1")), "enrolment")
        assert subsidy["msg_type"] == "subsidy_result" and subsidy["result"] == "settled"
        result = await rpc(fresh_platform_nc, s.dumps(s.settlement("RS1", "R1", total="30000.00")))
        assert result["msg_type"] == "settlement_result" and result["result"] == "settled"
        assert result["setl_id"] == "RS1" and Decimal(result["maf_pay"]) > 0
        total = sum(Decimal(result[k]) for k in ("hifp_pay", "oth_pay", "hifmi_pay", "maf_pay", "hosp_part_amt",
                                                 "psn_part_amt"))
        assert total == Decimal(result["medfee_sumamt"])
        again = await rpc(fresh_platform_nc, s.dumps(s.settlement("RS1", "R1", total="30000.00")))
        assert again == {**result, "result": "duplicate"}


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "linfen-2022.jsonl"


def feed_file(tmp_path: Path) -> Path:
    """examples/linfen-2022.jsonl when the repository has it, else a generated file with every kind of line."""
    if EXAMPLE.exists():
        return EXAMPLE
    path = tmp_path / "feed.jsonl"
    path.write_bytes(b"\n".join(s.mixed_feed()) + b"\n")
    return path


async def test_feed_over_platform_in_equals_offline_replay(fresh_nats_url: str, fresh_nc, fresh_platform_nc,
        tmp_path: Path) -> None:
    path = feed_file(tmp_path)
    lines = [line.strip() for line in path.read_bytes().splitlines() if line.strip()]
    replay = subprocess.run([sys.executable, "-m", "services.cli.main", "replay", str(path)], cwd=REPO,
                            capture_output=True, check=True)
    expected_flat = [json.loads(line) for line in replay.stdout.splitlines()]
    # The same decisions in-process, to know how many results each line gives (`ledger replay` prints them flat).
    handler = replay_handler(PackSet.from_dir())
    expected = [[json.loads(encode_result(r)) for r in await handler.handle(line)] for line in lines]
    assert [r for rs in expected for r in rs] == expected_flat
    want = sum(len(e) for e in expected)
    js = fresh_nc.jetstream()
    async with running_ledger(fresh_nats_url, tmp_path):
        out = await Collector().start(fresh_platform_nc)
        for i, line in enumerate(lines):
            msg_type = peek(line)[0] or ""
            token = msg_type if re.fullmatch(r"[A-Za-z0-9_-]+", msg_type) else "unknown"
            await fresh_platform_nc.jetstream().publish(f"platform.in.{token}", line, headers={"Nats-Msg-Id": f"line-{i}"})
        await out.wait_for(lambda msgs: len(msgs) >= want, timeout=60)
        await asyncio.sleep(0.2)                      # nothing more may come
    got: list[list[dict]] = [[] for _ in lines]
    for msg in out.msgs:
        got[int(msg.headers["Ledger-Msg-Id"].removeprefix("line-"))].append(json.loads(msg.data))
        assert msg.subject.startswith("ledger.out.")
    assert got == expected                            # line for line, results in order
    assert [r for rs in got for r in rs] == expected_flat
    subjects = {m.subject for m in out.msgs}
    if not EXAMPLE.exists():                          # the generated feed has every kind of result
        assert {"ledger.out.settlement_result", "ledger.out.enrolment_result", "ledger.out.medins_result",
                "ledger.out.settlement_cancel_result", "ledger.out.tilted_grant_result", "ledger.out.rejected",
                "ledger.out.year_close_result", "ledger.out.psn_identity_result",
                "ledger.out.settlement_adjustment"} <= subjects
    consumer = await js.consumer_info("PLATFORM_IN", "adjudicator")
    assert consumer.num_pending == 0 and consumer.num_ack_pending == 0


async def test_duplicate_a_day_later_after_restart(fresh_nats_url: str, fresh_nc, fresh_platform_nc,
        tmp_path: Path) -> None:
    clock = Clock()
    settlement = s.dumps(s.settlement("D1", "DUP1", total="42000.00"))
    async with running_ledger(fresh_nats_url, tmp_path, clock=clock):
        for msg_type, body in (("medins", s.medins()), ("psn_identity", s.identity("DUP1", "tekun")),
                               ("enrolment", s.enrolment("DUP1"))):
            await rpc(fresh_platform_nc, s.dumps(body), msg_type)
        first = await rpc(fresh_platform_nc, settlement)
        grant = await rpc(fresh_platform_nc, s.dumps(s.tilted_grant("GD1", "DUP1")), "tilted_grant")
    assert first["result"] == "settled" and grant["result"] == "settled"

    clock.advance(days=1, minutes=5)                  # far past JetStream's 2-minute duplicate window
    async with running_ledger(fresh_nats_url, tmp_path, clock=clock) as ledger:
        assert ledger.store.cached_persons == 0       # a new process: state comes from the stream
        assert await rpc(fresh_platform_nc, settlement) == {**first, "result": "duplicate"}
        assert await rpc(fresh_platform_nc, s.dumps(s.tilted_grant("GD1", "DUP1")), "tilted_grant") == {**grant,
                                                                                         "result": "duplicate"}
        enrolment = await rpc(fresh_platform_nc, s.dumps(s.enrolment("DUP1")), "enrolment")
        assert enrolment["result"] == "duplicate"
        person, commits = await person_from_stream(fresh_nc.jetstream(), ledger.person_key("DUP1"), "DUP1")
    assert list(person.settlements) == ["D1"] and len(commits) == 4   # identity, enrolment, settlement, grant


async def test_bad_input_is_dead_lettered_with_codes(fresh_nats_url: str, fresh_nc, fresh_platform_nc,
        tmp_path: Path) -> None:
    bad_json = b'{"msg_type": "settlement", "setl_id": '
    unknown = s.dumps({"msg_type": "teleport", "psn_no": "Z1"})
    not_enrolled = s.dumps(s.settlement("NE1", "NOBODY"))
    js = fresh_nc.jetstream()
    async with running_ledger(fresh_nats_url, tmp_path):
        await rpc(fresh_platform_nc, s.dumps(s.medins()), "medins")
        r1 = await rpc(fresh_platform_nc, bad_json)
        r2 = await rpc(fresh_platform_nc, unknown, "teleport")
        r3 = await rpc(fresh_platform_nc, not_enrolled)
        out = await Collector().start(fresh_platform_nc)
        await fresh_platform_nc.jetstream().publish("platform.in.settlement", bad_json)
        await out.wait_for(lambda msgs: len(msgs) >= 1)
    assert (r1["msg_type"], r1["reason"]["code"]) == ("rejected", codes.INVALID_MESSAGE)
    assert (r2["msg_type"], r2["reason"]["code"], r2["received_msg_type"]) == ("rejected", codes.UNKNOWN_MSG_TYPE,
                                                                              "teleport")
    assert (r3["msg_type"], r3["result"], r3["reason"]["code"]) == ("settlement_result", "rejected",
                                                                    codes.NOT_ENROLLED)
    assert out.msgs[0].subject == "ledger.out.rejected" and json.loads(out.msgs[0].data) == r1

    letters = await rejected_events(js)
    assert [(e.code, e.raw, e.source) for e in letters] == [
        (codes.INVALID_MESSAGE, bad_json, "nats:ledger.rpc.settlement"),
        (codes.UNKNOWN_MSG_TYPE, unknown, "nats:ledger.rpc.teleport"),
        (codes.NOT_ENROLLED, not_enrolled, "nats:ledger.rpc.settlement"),
        (codes.INVALID_MESSAGE, bad_json, "nats:platform.in.settlement"),
    ]
    assert all(e.hash and e.event_id and e.recorded_at for e in letters)


async def test_http_gives_the_same_result_as_request_reply(fresh_nats_url: str, fresh_platform_nc, tmp_path: Path) -> None:
    tokens = {"platform": "tok-platform", "supervisor": "tok-supervisor", "admin": "tok-admin"}
    auth = {"Authorization": "Bearer tok-platform"}

    def twin(body: dict, n: int) -> bytes:
        text = json.dumps(body)
        return text.replace("TWIN", f"TWIN{n}").encode()

    async with running_ledger(fresh_nats_url, tmp_path) as ledger:
        deps = ApiDeps(submit=ledger.adjudicator.submit, dead_letter=ledger.adjudicator.dead_letter, tokens=tokens,
                       metrics=ledger.metrics, publish_extra=ledger.publish_extra, nc=ledger.nc)
        await rpc(fresh_platform_nc, s.dumps(s.medins()), "medins")
        transport = httpx.ASGITransport(app=create_app(deps))     # same event loop as the NATS client
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as http:
            pairs = []
            for body, msg_type in ((s.identity("TWIN", "dibao"), "psn_identity"), (s.enrolment("TWIN"), "enrolment"),
                                   (s.settlement("S-TWIN", "TWIN", total="80000.00"), "settlement"),
                                   (s.settlement("S-TWIN", "TWIN", total="80000.00"), "settlement"),
                                   (s.settlement("S-TWIN-2", "TWIN", total="1000.00", hifp="2000"), "settlement"),
                                   (s.cancel("S-TWIN", "TWIN"), "settlement_cancel"),
                                   (s.settlement("S-NOBODY", "TWIN-none"), "settlement")):
                by_rpc = await rpc(fresh_platform_nc, twin(body, 1), msg_type)
                response = await http.post("/v1/messages", content=twin(body, 2), headers=auth)
                assert response.status_code == 200
                pairs.append((by_rpc, response.json()))
            for raw in (b"{not json", s.dumps({"msg_type": "teleport"}), s.dumps({"msg_type": "settlement"})):
                response = await http.post("/v1/messages", content=raw, headers=auth)
                assert response.status_code == 400
                pairs.append((await rpc(fresh_platform_nc, raw), response.json()))
            assert (await http.post("/v1/messages", content=b"{}")).status_code == 401
            assert (await http.post("/v1/messages", content=b"{}",
                                    headers={"Authorization": "Bearer tok-supervisor"})).status_code == 403
            metrics = (await http.get("/metrics")).text
    for by_rpc, by_http in pairs:
        assert json.loads(json.dumps(by_rpc).replace("TWIN1", "TWIN2")) == by_http
    results = [p[0]["result"] for p in pairs]
    assert results[:7] == ["recorded", "settled", "settled", "duplicate", "rejected", "reversed", "rejected"]
    assert 'ledger_messages_total{msg_type="settlement_result",result="settled",transport="http"} 1.0' in metrics
    assert 'ledger_messages_total{msg_type="settlement_result",result="settled",transport="rpc"} 1.0' in metrics


class _Exploding(Engine):
    """Crashes on one settlement, as a bug would."""

    def decide(self, message, person, ref, ctx, key_taken=False):  # type: ignore[override]
        if getattr(message, "setl_id", None) == "BOOM":
            raise RuntimeError(f"the engine fell over on {message.psn_no}")     # a bug's text may name the person
        return super().decide(message, person, ref, ctx, key_taken)


async def test_poison_message_is_dead_lettered_after_max_deliver(fresh_nats_url: str, fresh_nc, fresh_platform_nc,
        tmp_path: Path) -> None:
    js = fresh_nc.jetstream()
    boom = s.dumps(s.settlement("BOOM", "P-BOOM"))
    feed = FeedConfig(max_deliver=3, nak_delay=0.05, ack_wait=5.0)
    async with running_ledger(fresh_nats_url, tmp_path, feed=feed, engine=_Exploding(PackSet.from_dir())) as ledger:
        out = await Collector().start(fresh_platform_nc)
        await rpc(fresh_platform_nc, s.dumps(s.medins()), "medins")
        await rpc(fresh_platform_nc, s.dumps(s.enrolment("P-BOOM")), "enrolment")
        await fresh_platform_nc.jetstream().publish("platform.in.settlement", boom)
        await fresh_platform_nc.jetstream().publish("platform.in.settlement", s.dumps(s.settlement("FINE", "P-BOOM")))
        await out.wait_for(lambda msgs: len(msgs) >= 2, timeout=20)
        naks = ledger.metrics.redeliveries._value.get()
    by_key = {json.loads(m.data)["setl_id"]: json.loads(m.data) for m in out.msgs}
    assert by_key["FINE"]["result"] == "settled"          # a poison message blocks nobody
    assert by_key["BOOM"]["result"] == "rejected" and by_key["BOOM"]["reason"]["code"] == codes.POISON_MESSAGE
    assert "the engine fell over on <psn_no>" in by_key["BOOM"]["reason"]["message"]     # never the psn_no
    assert naks == 2
    letters = [e for e in await rejected_events(js) if e.code == codes.POISON_MESSAGE]
    assert len(letters) == 1 and letters[0].raw == boom and letters[0].source == "nats:platform.in.settlement"
    consumer = await js.consumer_info("PLATFORM_IN", "adjudicator")
    assert consumer.num_pending == 0 and consumer.num_ack_pending == 0
