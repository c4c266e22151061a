"""`ledger run` brings back its own nats-server and PostgreSQL after kill -9 (issue 10 part 1).

While a server is down callers get 503 ``unavailable`` within the request
timeout (never a wrong figure), ``/ready`` is 503; once the supervisor has
restarted it, everything answered before the crash is still there (each earlier
settlement answers ``duplicate`` with its original figures) and new ones settle.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import httpx

from ledger_support import free_port, sigint, start_ledger_run, wait_ready
from events import samples as s

PSN = "SUP-P"
REQUEST_TIMEOUT = 8.0          # the caller's: above LEDGER_PUBLISH_TIMEOUT (5 s), so a hang would show


async def _post(http: httpx.AsyncClient, auth: dict, body: bytes) -> tuple[int, dict, float]:
    started = time.monotonic()
    reply = await http.post("/v1/messages", content=body, headers=auth)
    return reply.status_code, reply.json(), time.monotonic() - started


async def _through_outage(http: httpx.AsyncClient, auth: dict, pid: int, bodies: list[bytes],
                          read_path: str | None = None, read_auth: dict | None = None) -> dict[str, list]:
    """kill -9 `pid`, then send `bodies` (and reads of `read_path`) until /ready is 200 again."""
    os.kill(pid, signal.SIGKILL)
    seen: dict[str, list] = {"posts": [], "reads": [], "ready": []}
    deadline = time.monotonic() + 40
    i = 0
    while time.monotonic() < deadline:
        if i < len(bodies):
            seen["posts"].append((i, *await _post(http, auth, bodies[i])))
            if seen["posts"][-1][1] == 200:
                i += 1
        if read_path is not None:
            started = time.monotonic()
            reply = await http.get(read_path, headers=read_auth)
            seen["reads"].append((reply.status_code, reply.json(), time.monotonic() - started))
        ready = (await http.get("/ready")).status_code
        seen["ready"].append(ready)
        if ready == 200 and 503 in seen["ready"] and i == len(bodies):
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"not back within 40 s: {seen}")


def _check_outage_answers(seen: dict[str, list]) -> None:
    for _, status, body, seconds in seen["posts"]:
        assert seconds < REQUEST_TIMEOUT
        assert (status, body.get("result")) in ((200, "settled"), (503, "error")), body
        if status == 503:
            assert body["reason"]["code"] == "unavailable"


async def test_ledger_run_restarts_killed_nats_and_postgres(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    log_path = tmp_path / "ledger.log"
    with log_path.open("wb") as log:
        proc = start_ledger_run(data_dir, port, stderr=log, LEDGER_TOKEN_PLATFORM="platform-token-for-tests",
                                LEDGER_TOKEN_SUPERVISOR="supervisor-token-for-tests",
                                LEDGER_TOKEN_ADMIN="admin-token-for-tests", LEDGER_RESTART_DELAY="2")
    auth = {"Authorization": "Bearer platform-token-for-tests"}
    reader = {"Authorization": "Bearer supervisor-token-for-tests"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=REQUEST_TIMEOUT) as http:
            await wait_ready(http, proc)
            for body in (s.medins(), s.identity(PSN, "tekun"), s.enrolment(PSN)):
                assert (await http.post("/v1/messages", content=s.dumps(body), headers=auth)).status_code == 200
            before = {}
            for n in range(4):
                status, body, _ = await _post(http, auth, s.dumps(s.settlement(f"SUP-{n}", PSN, total="20000.00")))
                assert status == 200 and body["result"] == "settled", body
                before[body["setl_id"]] = body

            nats_pid = int((data_dir / "nats" / "nats-server.pid").read_text())
            during = [s.dumps(s.settlement(f"SUP-N{n}", PSN, total="1000.00")) for n in range(3)]
            seen = await _through_outage(http, auth, nats_pid, during)
            _check_outage_answers(seen)
            assert any(status == 503 for _, status, _, _ in seen["posts"]), seen   # the outage was seen
            assert int((data_dir / "nats" / "nats-server.pid").read_text()) != nats_pid

            for setl_id, first in before.items():       # answered before the crash: still there, same figures
                again = await _post(http, auth, s.dumps(s.settlement(setl_id, PSN, total="20000.00")))
                assert again[:2] == (200, {**first, "result": "duplicate"})
            fresh = await _post(http, auth, s.dumps(s.settlement("SUP-AFTER-NATS", PSN, total="1500.00")))
            assert fresh[:2] == (200, fresh[1]) and fresh[1]["result"] == "settled"

            pg_pid = int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])
            read_path = "/v1/settlements/SUP-0"
            assert (await http.get(read_path, headers=reader)).status_code == 200
            during = [s.dumps(s.settlement(f"SUP-P{n}", PSN, total="1000.00")) for n in range(3)]
            seen = await _through_outage(http, auth, pg_pid, during, read_path, reader)
            _check_outage_answers(seen)                  # decisions need NATS only: they go on
            assert any(status == 503 for status, _, _ in seen["reads"]), seen["reads"]
            for status, body, seconds in seen["reads"]:
                assert seconds < REQUEST_TIMEOUT
                assert status in (200, 503), body
                if status == 503:
                    assert body["code"] == "unavailable", body
            read = await http.get(read_path, headers=reader)
            assert read.status_code == 200 and read.json()["setl_id"] == "SUP-0"
            for setl_id, first in before.items():
                again = await _post(http, auth, s.dumps(s.settlement(setl_id, PSN, total="20000.00")))
                assert again[:2] == (200, {**first, "result": "duplicate"})
    finally:
        code = sigint(proc)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    died = [(e["server"], e["exit_code"]) for e in lines if e.get("event") == "server_died"]
    restarted = [e["server"] for e in lines if e.get("event") == "server_restarted"]
    assert code == 0, log_path.read_text()[-3000:]
    assert died[0] == ("nats", -9) and died[1][0] == "postgres" and len(died) == 2, died
    assert restarted == ["nats", "postgres"]
