"""R3 for real (issue 10 part 3): `ledger run` on a 3-node cluster keeps deciding when the stream leader dies.

Callers may get ``unavailable`` during the election, never a wrong figure, and
every settlement the ledger acknowledged is in the stream afterwards (read from
the surviving nodes, then again with the killed node back).
"""
from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import httpx
import nats

from events import ledger as ev
from ledger_support import SECRET, free_port, person_from_stream, shared_paid, sigint, start_ledger_run, wait_ready
from events import samples as s
from services.runtime.cluster import NatsCluster
from services.runtime.secrets import person_key
from events.subjects import STREAM

PERSONS = [f"R3-P{i}" for i in range(4)]
TOKEN = "platform-token-for-r3-tests"
REQUEST_TIMEOUT = 10.0


async def _settle(http: httpx.AsyncClient, setl_id: str, psn: str) -> tuple[int, dict]:
    body = s.dumps(s.settlement(setl_id, psn, total="9000.00", ooc="0"))
    reply = await http.post("/v1/messages", content=body, headers={"Authorization": f"Bearer {TOKEN}"})
    return reply.status_code, reply.json()


async def _stored(urls: str) -> dict[str, list[ev.Commit]]:
    nc = await nats.connect(servers=urls.split(","), connect_timeout=2)
    try:
        js = nc.jetstream(timeout=10.0)
        return {psn: (await person_from_stream(js, person_key(SECRET.encode(), psn), psn))[1] for psn in PERSONS}
    finally:
        await nc.close()


def _facts(commits: list[ev.Commit]) -> list[str]:
    return [e.setl_id for c in commits for e in c.events if isinstance(e, ev.SettlementFacts)]


async def test_ledger_keeps_deciding_when_the_stream_leader_is_killed(tmp_path: Path) -> None:
    cluster = NatsCluster(tmp_path / "cluster").start()
    port = free_port()
    with (tmp_path / "ledger.log").open("wb") as log:
        proc = start_ledger_run(tmp_path / "data", port, stderr=log, NATS_URL=cluster.urls,   # PostgreSQL embedded
                                LEDGER_NATS_ADMIN_URL=cluster.urls_for("admin"), LEDGER_STREAM_REPLICAS="3",
                                LEDGER_FEED_REPLICAS="3", LEDGER_PERSON_KEY_SECRET=SECRET, LEDGER_TOKEN_PLATFORM=TOKEN)
    answers: dict[str, list[tuple[int, dict]]] = {}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=REQUEST_TIMEOUT) as http:
            await wait_ready(http, proc)
            info = cluster.nodes[0].monitor("/jsz?accounts=true&streams=true&config=true")
            replicas = [d["config"]["num_replicas"] for a in info["account_details"] for d in a["stream_detail"]
                        if d["name"] == STREAM]
            assert replicas == [3]
            auth = {"Authorization": f"Bearer {TOKEN}"}
            setup = [s.medins()] + [m for p in PERSONS for m in (s.identity(p, "dibao"), s.enrolment(p))]
            for body in setup:
                assert (await http.post("/v1/messages", content=s.dumps(body), headers=auth)).status_code == 200

            async def feeder(psn: str, prefix: str, count: int) -> None:
                for n in range(count):
                    setl_id = f"{prefix}-{psn}-{n}"
                    started = time.monotonic()
                    status, body = await _settle(http, setl_id, psn)
                    assert time.monotonic() - started < REQUEST_TIMEOUT
                    answers.setdefault(setl_id, []).append((status, body))
                    assert (status, body.get("result")) in ((200, "settled"), (503, "error")), body
                    await asyncio.sleep(0.02)

            await asyncio.gather(*(feeder(p, "BEFORE", 3) for p in PERSONS))
            leader = cluster.wait_stream_leader()
            feeding = asyncio.gather(*(feeder(p, "DURING", 25) for p in PERSONS))
            await asyncio.sleep(0.3)
            cluster.kill(leader)                              # kill -9 the node that leads LEDGER
            new_leader = await asyncio.to_thread(cluster.wait_stream_leader, other_than=leader)
            await feeding
            assert new_leader != leader

            deadline = time.monotonic() + 30                  # after the election: deciding again
            while True:
                status, body = await _settle(http, f"AFTER-{time.monotonic_ns()}", PERSONS[0])
                if status == 200:
                    assert body["result"] == "settled"
                    answers.setdefault(body["setl_id"], []).append((status, body))
                    break
                assert time.monotonic() < deadline, body
                await asyncio.sleep(0.5)

            unanswered = [k for k, a in answers.items() if all(st != 200 for st, _ in a)]
            for setl_id in unanswered:                        # sent again, as the platform would
                psn = "-".join(setl_id.split("-")[1:-1])
                answers[setl_id].append(await _settle(http, setl_id, psn))
            for setl_id, replies in answers.items():          # every settled answer stands: same figures
                first = next(body for st, body in replies if st == 200)
                psn = first["psn_no"]
                status, again = await _settle(http, setl_id, psn)
                assert (status, again) == (200, {**first, "result": "duplicate"})
    finally:
        code = sigint(proc)
    assert code == 0, (tmp_path / "ledger.log").read_text()[-3000:]
    saw_unavailable = any(st == 503 for replies in answers.values() for st, _ in replies)
    try:
        for urls in (cluster.urls_for("ledger", [n for n in cluster.nodes if n.name != leader]), None):
            if urls is None:
                cluster.restart(leader)                       # the killed node back: nothing it missed is lost
                await asyncio.to_thread(cluster.wait_meta_leader)
                urls = cluster.urls
            stored = await _stored(urls)
            settled = {k: next(b for st, b in r if st == 200) for k, r in answers.items()}
            for psn, commits in stored.items():
                facts = _facts(commits)
                assert len(facts) == len(set(facts))          # nothing decided twice
                mine = {k for k, b in settled.items() if b["psn_no"] == psn}
                assert mine <= set(facts)                     # every acknowledged settlement is there
                paid = sum((Decimal(b["maf_pay"]) for k, b in settled.items() if b["psn_no"] == psn), Decimal(0))
                assert shared_paid(commits) == paid           # and the money the answers said
    finally:
        cluster.close()
    print(f"leader {leader} killed, {new_leader} took over; unavailable answers seen: {saw_unavailable}")
