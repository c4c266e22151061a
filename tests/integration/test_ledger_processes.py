"""Real processes: two adjudicators racing for one person, kill -9 during a feed, and `ledger run` end to end."""
from __future__ import annotations

import asyncio
import json
import signal
from decimal import Decimal
from pathlib import Path

import httpx

from events import ledger as ev
from ledger_support import (SECRET, Collector, free_port, person_from_stream, rpc, shared_paid, sigint,
                            start_ledger_run, start_worker, stop_process, wait_ready)
from events import samples as s
from services.runtime.secrets import person_key

CAP = Decimal("60000")


def key(psn_no: str) -> str:
    return person_key(SECRET.encode(), psn_no)


async def test_two_adjudicators_never_exceed_the_cap(fresh_nats_url: str, fresh_nc, fresh_platform_nc,
                                                     tmp_path: Path) -> None:
    workers = [await start_worker(fresh_nats_url, tmp_path) for _ in range(2)]
    try:
        psn = "CAP-1"
        await rpc(fresh_platform_nc, s.dumps(s.medins()), "medins")
        await rpc(fresh_platform_nc, s.dumps(s.identity(psn, "dibao")), "psn_identity")
        await rpc(fresh_platform_nc, s.dumps(s.enrolment(psn)), "enrolment")
        used = Decimal(0)
        n = 0
        while used < CAP - Decimal("8000"):             # bring the person near the cap
            result = await rpc(fresh_platform_nc, s.dumps(s.settlement(f"PRE-{n}", psn, total="60000.00", ooc="0")))
            used = Decimal(result["cap"]["used"])
            n += 1
        assert used < CAP

        bodies = [s.dumps(s.settlement(f"RACE-{i:02d}", psn, total="9000.00", ooc="0", day="2022-06-01"))
                  for i in range(50)]
        replies = await asyncio.gather(*(rpc(fresh_platform_nc, b, timeout=30) for b in bodies))
    finally:
        codes = [stop_process(w) for w in workers]
    assert codes == [0, 0]
    logs = "".join(w.log_path.read_text() for w in workers)  # type: ignore[attr-defined]
    assert '"event": "conflict"' in logs                  # the two really raced (debug log, by person_key)
    assert psn not in logs and key(psn) in logs           # logs name persons by key, never by psn_no

    assert sorted(r["setl_id"] for r in replies) == sorted(f"RACE-{i:02d}" for i in range(50))
    assert all(r["result"] == "settled" for r in replies)
    paid = sum(Decimal(r["maf_pay"]) for r in replies)
    assert paid > 0 and used + paid == CAP                # the room was used up, and not a cent more
    assert max(Decimal(r["cap"]["used"]) for r in replies) == CAP

    person, commits = await person_from_stream(fresh_nc.jetstream(), key(psn), psn)
    assert person.years[2022].assistance_cap_used == CAP == shared_paid(commits)
    facts = [e.setl_id for c in commits for e in c.events if isinstance(e, ev.SettlementFacts)]
    assert len(facts) == len(set(facts)) == n + 50        # every settlement decided exactly once


async def test_kill_9_during_a_feed_loses_nothing_and_pays_nothing_twice(
        fresh_nats_url: str, fresh_nc, fresh_platform_nc, tmp_path: Path) -> None:
    persons, count = 20, 400
    js = fresh_nc.jetstream()
    out = await Collector().start(fresh_platform_nc, "ledger.out.settlement_result")
    first = await start_worker(fresh_nats_url, tmp_path, LEDGER_FEED_ACK_WAIT="2")
    second = None
    try:
        for line in s.setup_lines(persons, prefix="K"):
            msg_type = json.loads(line)["msg_type"]
            await rpc(fresh_platform_nc, line, msg_type)
        lines = list(s.settlement_lines(count, persons, prefix="K", id_prefix="K"))
        platform_js = fresh_platform_nc.jetstream()
        acks = await asyncio.gather(*[await platform_js.publish_async("platform.in.settlement", line)
                                      for line in lines])
        assert len(acks) == count
        await out.wait_for(lambda msgs: len(msgs) >= count // 4)
        first.send_signal(signal.SIGKILL)                  # mid-feed: decided, maybe stored, not acked
        first.wait()
        second = await start_worker(fresh_nats_url, tmp_path, LEDGER_FEED_ACK_WAIT="2")
        await out.wait_for(lambda msgs: {json.loads(m.data)["setl_id"] for m in msgs} >= {
            json.loads(line)["setl_id"] for line in lines}, timeout=60)
        consumer = await js.consumer_info("PLATFORM_IN", "adjudicator")
        assert consumer.num_pending == 0
    finally:
        stop_process(first)
        if second is not None:
            assert stop_process(second) == 0

    results = out.bodies()
    assert {r["result"] for r in results} <= {"settled", "duplicate"}
    settled = [r["setl_id"] for r in results if r["result"] == "settled"]
    facts: list[str] = []
    for i in range(persons):
        psn = s.psn_no_of(i, "K")
        _, commits = await person_from_stream(js, key(psn), psn)
        facts.extend(e.setl_id for c in commits for e in c.events if isinstance(e, ev.SettlementFacts))
    assert len(facts) == len(set(facts)) == count          # each settlement stored exactly once
    assert len(set(settled)) == len(settled)               # and answered "settled" at most once
    by_key = {}
    for r in results:                                      # a redelivered one answers with the same figures
        by_key.setdefault(r["setl_id"], []).append({**r, "result": "settled"})
    assert all(all(x == answers[0] for x in answers) for answers in by_key.values())


async def test_ledger_run_smoke(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    settlement = s.dumps(s.settlement("RUN-1", "RUN-P", total="25000.00"))
    proc = start_ledger_run(data_dir, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            await wait_ready(http, proc)
            tokens = json.loads((data_dir / "tokens.json").read_text())
            assert set(tokens) == {"platform", "supervisor", "admin"}
            auth = {"Authorization": f"Bearer {tokens['platform']}"}
            for body in (s.medins(), s.identity("RUN-P", "tekun"), s.enrolment("RUN-P")):
                assert (await http.post("/v1/messages", content=s.dumps(body), headers=auth)).status_code == 200
            first = (await http.post("/v1/messages", content=settlement, headers=auth)).json()
            assert first["result"] == "settled"
            assert (await http.get("/health")).json() == {"status": "ok"}
            assert "ledger_decision_seconds" in (await http.get("/metrics")).text
            assert (await http.get("/schema/openapi.json")).status_code == 200
    finally:
        code = sigint(proc)
    assert code == 0, proc.stderr.read().decode() if proc.stderr else ""
    assert b"claims-ledger ready" in (proc.stdout.read() if proc.stdout else b"")

    proc = start_ledger_run(data_dir, port)              # resumes on the same data
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            await wait_ready(http, proc)
            auth = {"Authorization": f"Bearer {tokens['platform']}"}
            again = (await http.post("/v1/messages", content=settlement, headers=auth)).json()
    finally:
        code = sigint(proc)
    assert code == 0
    assert again == {**first, "result": "duplicate"}
