"""integration.md §4 on real servers: nasty bodies over `POST /v1/messages`, `ledger.rpc.settlement` and the
`platform.in` feed each get their rejected answer and a dead letter that projects into PostgreSQL; the ledger
stays up and decides a good message afterwards (ADR 0003 "Hostile input")."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from events import codes
from events.limits import MAX_MESSAGE_BYTES
from ledger_support import SEAL_SECRET, Collector, rejected_events, rpc, running_ledger
from readside_helpers import project_until
from events import samples as s
from services.api.app import ApiDeps, create_app
from services.api.messages import UNREADABLE

TOKENS = {"platform": "tok-platform", "supervisor": "tok-supervisor", "admin": "tok-admin"}
AUTH = {"Authorization": "Bearer tok-platform"}
GOOD = s.dumps(s.settlement("H-S1", "H-P1"))
NATS_MAX = 8 * 1024 * 1024

NASTY = {
    "deep arrays": b"[" * 3000 + b"]" * 3000,
    "deep objects in a field": GOOD[:-1] + b',"x":' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"}",
    "100k deep": b"[" * 100_000 + b"]" * 100_000,
    "7 MB": GOOD[:-1] + b',"x":"' + b"A" * 7_000_000 + b'"}',
    "12 MB": b"B" * 12_000_000,                       # over NATS max_payload and Litestar's default 10 MB body
    "not UTF-8": GOOD.replace(b'"H-P1"', b'"H-\xff\xfe"'),
    "lone surrogate": GOOD.replace(b'"H-P1"', b'"H-\\ud800"'),
    "NUL": GOOD.replace(b'"H-P1"', b'"H-\\u0000"'),
    "BOM": b"\xef\xbb\xbf" + GOOD,
    "array": b"[1, 2, 3]",
    "empty": b"",
    "msg_type object": b'{"msg_type":{"psn_no":"SECRET-1"},"psn_no":"SECRET-1"}',
    "msg_type number": b'{"msg_type":7}',
    "duplicate msg_type": GOOD.replace(b'{"msg_type":"settlement"', b'{"msg_type":"settlement","msg_type":"x"'),
    "1e999999": GOOD.replace(b'"medfee_sumamt":"20000.00"', b'"medfee_sumamt":1e999999'),
    "60k digits": GOOD.replace(b'"medfee_sumamt":"20000.00"', b'"medfee_sumamt":' + b"1" * 60_000),
    "NaN": GOOD.replace(b'"medfee_sumamt":"20000.00"', b'"medfee_sumamt":NaN'),
}


def check_rejected(name: str, answer: dict) -> None:
    assert answer["result"] == "rejected", (name, answer)
    assert answer["reason"]["code"] in codes.ALL and 0 < len(answer["reason"]["message"]) <= 500, name
    assert "SECRET" not in json.dumps(answer["reason"]), name


async def test_nasty_bodies_over_http_rpc_and_feed_are_answered_kept_and_projected(
        env, fresh_platform_nc, tmp_path: Path) -> None:
    platform = fresh_platform_nc                       # what the platform may do, as the platform
    assert b'"medfee_sumamt":"20000.00"' in GOOD
    async with running_ledger(env.nats_url, tmp_path) as ledger:
        out = await Collector().start(platform, "ledger.out.>")
        deps = ApiDeps(submit=ledger.adjudicator.submit, dead_letter=ledger.adjudicator.dead_letter, tokens=TOKENS,
                       metrics=ledger.metrics, publish_extra=ledger.publish_extra, nc=ledger.nc)
        transport = httpx.ASGITransport(app=create_app(deps))
        sent = 0
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger", timeout=60) as http:
            for name, body in NASTY.items():
                response = await http.post("/v1/messages", content=body, headers=AUTH)
                answer = response.json()
                check_rejected(name, answer)
                assert response.status_code == (400 if answer["reason"]["code"] in UNREADABLE else 200), name
                sent += 1
                if len(body) < NATS_MAX - 1024:
                    check_rejected(name, await rpc(platform, body, "settlement", timeout=30))
                    await platform.jetstream().publish("platform.in.settlement", body, timeout=30)
                    sent += 2
            # still up: a good message is decided on each transport
            assert (await rpc(platform, s.dumps(s.medins()), "medins"))["result"] == "recorded"
            assert (await rpc(platform, s.dumps(s.enrolment("H-P1")), "enrolment"))["result"] == "settled"
            response = await http.post("/v1/messages", content=GOOD, headers=AUTH)
            assert response.status_code == 200 and response.json()["result"] == "settled"
            await platform.jetstream().publish("platform.in.settlement", s.dumps(s.settlement("H-S2", "H-P1")))
        expected = sum(len(b) < NATS_MAX - 1024 for b in NASTY.values()) + 1

        def fed(msgs: list) -> list[dict]:
            return [json.loads(m.data) for m in msgs if m.headers and "Ledger-Inbound-Seq" in m.headers]
        await out.wait_for(lambda msgs: len(fed(msgs)) >= expected, 60)
        answers = fed(out.msgs)
        good = [a for a in answers if a.get("setl_id") == "H-S2"]
        assert len(answers) == expected and [a["result"] for a in good] == ["settled"]
        for answer in answers:
            if answer is not good[0]:
                check_rejected("feed", answer)

        letters = await rejected_events(ledger.js)
        assert len(letters) == sent
        assert all(len(letter.raw) <= MAX_MESSAGE_BYTES for letter in letters)
        big = [letter for letter in letters if "12000000 bytes" in letter.message]
        assert len(big) == 1 and big[0].raw == NASTY["12 MB"][:MAX_MESSAGE_BYTES] and big[0].source == "http"
        assert {letter.source for letter in letters} == {"http", "nats:ledger.rpc.settlement",
                                                         "nats:platform.in.settlement"}
        # The read side takes every dead letter: NUL or junk in a text column would stop the projector here.
        last = (await env.js.stream_info("LEDGER")).state.last_seq
        await asyncio.wait_for(project_until(env.dsn, env.pool, env.js, last, seal_key=SEAL_SECRET.encode()), 60)
        assert await env.pool.fetchval("SELECT count(*) FROM dead_letter") == sent
