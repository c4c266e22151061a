"""The reported bug, as an operator meets it: `ledger run` stopped, its stream's files lost, started again.

Before ADR 0010 it came back ready, verified ok and paid every re-sent settlement a second time.
Now it comes back held; `ledger restore` puts the stream back from the read models (the re-sent
settlement is a `duplicate` with its original figures). Then the stream loses its last commit to a
truncated block file (what Jepsen saw JetStream do), and `ledger accept-loss` is the way on.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ledger_support import REPO
from loss_support import until
from events import samples as s


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "NATS_", "DATABASE_"))}
    env.update(LEDGER_DATA_DIR=str(data_dir), LEDGER_LOG_LEVEL="info", PYTHONUNBUFFERED="1", **extra)
    return env


class LedgerRun:
    """`ledger run` with embedded servers; stderr (its JSON log lines) kept in a file."""

    def __init__(self, data_dir: Path, port: int):
        self.data_dir, self.port = data_dir, port
        self.log = data_dir.parent / f"ledger-run-{time.monotonic_ns()}.log"
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "services.cli.main", "run"], cwd=REPO,
                                         env=_env(data_dir, LEDGER_NATS_PORT="0", LEDGER_HTTP_PORT=str(port)),
                                         stdout=subprocess.PIPE, stderr=err)
        self.nats_url = ""

    async def started(self) -> LedgerRun:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), timeout=90)
        assert b"claims-ledger ready" in line, self.log.read_text()
        self.nats_url = line.decode().split("NATS ", 1)[1].split()[0]
        return self

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def alarms(self) -> list[dict]:
        lines = [json.loads(x) for x in self.log.read_text().splitlines() if x.startswith("{")]
        return [x for x in lines if x.get("event") == "stream_loss_detected"]


async def _cli(run: LedgerRun, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.cli.main", *args, cwd=REPO,
                                                # the local ledger run, found as an operator would:
                                                # its port, its data dir's NATS users (admin included)
                                                env=_env(run.data_dir,
                                                         LEDGER_NATS_PORT=run.nats_url.rsplit(":", 1)[1]),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode, out.decode(), err.decode()


def _stream_dir(data_dir: Path) -> Path:
    return data_dir / "nats" / "jetstream" / "LEDGER" / "streams" / "LEDGER"      # account LEDGER (ADR 0009)


async def test_ledger_run_on_a_lost_stream_is_held_until_restored_or_the_loss_accepted(tmp_path: Path) -> None:
    data, port = tmp_path / "data", _free_port()
    stays = {n: s.dumps(s.settlement(n, "RESTART-P", total="30000.00")) for n in ("S1", "S2")}
    run = await LedgerRun(data, port).started()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        tokens = json.loads((data / "tokens.json").read_text())
        auth = {"Authorization": f"Bearer {tokens['platform']}"}
        sup = {"Authorization": f"Bearer {tokens['supervisor']}"}

        async def post(body: bytes) -> httpx.Response:
            return await http.post("/v1/messages", content=body, headers=auth)

        async def caught_up() -> bool:
            views = (await http.get("/v1/projections", headers=sup)).json()
            return (await http.get("/ready")).status_code == 200 and all(v["lag"] == 0 for v in views)

        async def held_for(code: str) -> bool:
            try:
                response = await http.get("/ready")
            except httpx.TransportError:
                return False
            return response.status_code == 503 and code in response.json()["checks"]["integrity"]["detail"]

        async def decided(body: bytes) -> dict:
            async def once() -> dict | None:
                response = await post(body)
                return response.json() if response.status_code == 200 else None
            return await until(once, timeout=15)

        try:
            for message in (s.medins(), s.identity("RESTART-P"), s.enrolment("RESTART-P")):
                assert (await post(s.dumps(message))).status_code == 200
            first = (await post(stays["S1"])).json()
            assert first["result"] == "settled"
            await until(caught_up, timeout=30)
        finally:
            assert run.stop() == 0

        # A lost disk: the stream's directory is gone; the ledger starts again on the same data.
        shutil.rmtree(_stream_dir(data))
        run = await LedgerRun(data, port).started()
        try:
            await until(lambda: held_for("stream_recreated"), timeout=30)
            refused = await post(stays["S1"])
            assert refused.status_code == 503 and refused.json()["reason"]["code"] == "unavailable"
            assert "stream_recreated" in {a["finding"] for a in run.alarms() if a["level"] == "critical"}
            code, _, err = await _cli(run, "restore")
            assert code == 1 and "stream_recreated" in err                    # says what it would do, does not
            code, out, err = await _cli(run, "restore", "--yes", "--json")
            assert code == 0, err
            report = json.loads(out)
            assert report["done"] and report["after"] == [] and report["from_read_models"] >= 5
            assert await decided(stays["S1"]) == {**first, "result": "duplicate"}
            assert (await http.get("/v1/verify", headers=sup)).json()["ok"]

            # The stream's last commit lost to a block file cut short while the server was down.
            blk = max(_stream_dir(data).glob("msgs/*.blk"), key=lambda p: int(p.stem))
            size = blk.stat().st_size
            second = (await post(stays["S2"])).json()
            assert second["result"] == "settled"
            await until(caught_up, timeout=30)
        finally:
            assert run.stop() == 0
        with blk.open("r+b") as cut:
            cut.truncate(size)
        (blk.parent / "index.db").unlink(missing_ok=True)
        run = await LedgerRun(data, port).started()
        try:
            await until(lambda: held_for("stream_behind_checkpoint"), timeout=30)
            assert (await post(stays["S2"])).status_code == 503
            code, out, err = await _cli(run, "accept-loss", "--reason", "node 1 block file truncated", "--json")
            assert code == 0, err
            accepted = json.loads(out)
            assert accepted["acceptance_id"] and accepted["after"] == []
            assert "stream_behind_checkpoint" in {f["code"] for f in accepted["findings"]}
            await until(caught_up, timeout=30)
            # Accepted: S2 is gone from the ledger, so it is decided (and paid) again; S1 was kept.
            again = await decided(stays["S2"])
            assert again["result"] == "settled" and again["maf_pay"] == second["maf_pay"]
            assert (await decided(stays["S1"]))["result"] == "duplicate"
            report = (await http.get("/v1/verify", headers=sup)).json()
            assert report["ok"] and report["acceptances"][0]["reason"] == "node 1 block file truncated"
        finally:
            assert run.stop() == 0
