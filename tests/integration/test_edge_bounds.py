"""The NATS edge keeps nats-py's protections (issue 10 part 5), on a real `ledger run`.

* A message over ``max_payload`` (or whose commit is) becomes a ``message_too_large``
  dead letter and the ledger's connection survives — on a server forced to 64 KB.
* Overload at ~10× capacity: in-flight work and RSS stay bounded, excess callers
  get ``unavailable`` or time out, and the server never cuts the ledger as a slow
  consumer. A short run here; ``python -m services.runtime.overload --seconds 60`` is the full one.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import nats

from services.runtime.overload import run_overload
from events import codes
from ledger_support import (SECRET, Collector, free_port, rejected_events, rpc, sigint, start_ledger_run,
                            wait_ready)
from events import samples as s
from services.runtime.cluster import NatsCluster

TOKEN = "platform-token-for-edge-tests"
KB = 1024


def _ledger_conn(server: NatsCluster) -> dict:
    conns = server.connections("claims-ledger")
    assert len(conns) == 1, conns
    return conns[0]


async def test_over_max_payload_is_a_dead_letter_and_the_connection_survives(tmp_path: Path) -> None:
    server = NatsCluster(tmp_path / "nats", size=1, max_payload=64 * KB).start()
    server.provision(replicas=1)
    port = free_port()
    with (tmp_path / "ledger.log").open("wb") as log:
        proc = start_ledger_run(tmp_path / "data", port, stderr=log, NATS_URL=server.urls,  # PostgreSQL embedded
                                LEDGER_PERSON_KEY_SECRET=SECRET,
                                LEDGER_TOKEN_PLATFORM=TOKEN)
    nc = None
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            await wait_ready(http, proc)
            before = _ledger_conn(server)
            nc = await nats.connect(server.urls_for("platform"))      # as the platform sends
            assert nc.max_payload == 64 * KB
            # Under the limit inbound, over it once dead-lettered: its raw bytes go in base64.
            near = json.dumps({"msg_type": "settlement", "setl_id": "BIG-1", "junk": "x" * (60 * KB)}).encode()
            assert len(near) < nc.max_payload
            answer = await rpc(nc, near)
            assert answer["result"] == "rejected" and answer["reason"]["code"] == codes.MESSAGE_TOO_LARGE, answer
            assert answer["setl_id"] == "BIG-1"

            out = await Collector().start(nc, "ledger.out.>")
            feed = json.dumps({"msg_type": "settlement", "setl_id": "BIG-3", "junk": "z" * (60 * KB)}).encode()
            await nc.jetstream().publish("platform.in.settlement", feed)        # the feed: same dead letter
            await out.wait_for(lambda msgs: any(b'"BIG-3"' in m.data for m in msgs))
            fed = next(b for b in out.bodies() if b["setl_id"] == "BIG-3")
            assert fed["reason"]["code"] == codes.MESSAGE_TOO_LARGE

            auth = {"Authorization": f"Bearer {TOKEN}"}
            near_http = json.dumps({"msg_type": "settlement", "setl_id": "BIG-4", "junk": "w" * (60 * KB)}).encode()
            reply = await http.post("/v1/messages", content=near_http, headers=auth)   # its commit is too big
            assert reply.status_code == 413 and reply.json()["reason"]["code"] == codes.MESSAGE_TOO_LARGE
            huge = json.dumps({"msg_type": "settlement", "setl_id": "BIG-2", "junk": "y" * (200 * KB)}).encode()
            reply = await http.post("/v1/messages", content=huge, headers=auth)
            assert reply.status_code == 413, reply.text
            assert reply.json()["reason"]["code"] == codes.MESSAGE_TOO_LARGE

            for body in (s.medins(), s.identity("BIG-P", "dibao"), s.enrolment("BIG-P")):
                assert (await http.post("/v1/messages", content=s.dumps(body), headers=auth)).status_code == 200
            after = await rpc(nc, s.dumps(s.settlement("SMALL-1", "BIG-P")))
            assert after["result"] == "settled"
            same = _ledger_conn(server)
            assert (same["cid"], same["start"]) == (before["cid"], before["start"])   # never reconnected
            assert server.slow_consumers() == 0

            ledger_nc = await nats.connect(server.urls)               # the stream, as the services read it
            letters = [e for e in await rejected_events(ledger_nc.jetstream()) if e.code == codes.MESSAGE_TOO_LARGE]
            await ledger_nc.close()
            assert sorted(e.source for e in letters) == ["http", "http", "nats:ledger.rpc.settlement",
                                                         "nats:platform.in.settlement"], letters
            http_letter = next(e for e in letters if e.source == "http" and str(len(huge)) in e.message)
            assert huge.startswith(http_letter.raw) and 0 < len(http_letter.raw) <= 16 * KB
            assert hashlib.sha256(huge).hexdigest() in http_letter.message
            assert str(len(huge)) in http_letter.message
    finally:
        if nc is not None:
            await nc.close()
        code = sigint(proc)
        server.close()
    assert code == 0, (tmp_path / "ledger.log").read_text()[-3000:]
    assert "Maximum Payload" not in (tmp_path / "nats" / "n1" / "nats-server.log").read_text()


async def test_overload_stays_bounded_and_the_ledger_is_never_cut(tmp_path: Path) -> None:
    # Its own embedded PostgreSQL: the load's read-side writes stay off the session server others time.
    report = await run_overload(tmp_path, seconds=10.0, max_inflight=256)
    print(report.table())
    assert report.capacity > 0 and report.rate >= 9 * report.capacity
    assert report.settled > 0                                  # it kept deciding under the load
    assert report.unavailable > 0                              # and told the excess so at once
    assert report.other == 0                                   # nothing but settled/unavailable/no answer
    assert report.max_inflight <= 256                          # the gauge never passed the bound
    assert report.rss_peak - report.rss_before < 64 * KB * KB, report   # unbounded: +146 MB in 10 s
    assert report.slow_consumers == 0 and report.reconnected is False
