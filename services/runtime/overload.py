"""Overload a real `ledger run` over request/reply at ~10× what it can decide (issue 10 part 5).

Measures the capacity first (closed loop, below the in-flight bound), then sends
open-loop at ``multiple`` × that for ``seconds``, sampling the ledger's RSS and
its ``ledger_rpc_inflight`` gauge. Reports what the callers got (settled,
unavailable, no answer within ``timeout``) and whether the server ever cut the
ledger's connection (slow consumer, or a new connection id).

The integration test runs 10 s; ``make chaos`` (or ``python -m services.runtime.overload
--seconds 60``) the issue's full 60 s. Everything runs on servers it starts on
127.0.0.1 and stops by itself.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from events import samples as s
from services.runtime.cluster import NatsCluster

REPO = Path(__file__).resolve().parents[2]
PERSONS = 200
TOKEN = "overload-platform-token"


@dataclass
class OverloadReport:
    capacity: float = 0.0             # settlements/s, closed loop
    rate: float = 0.0                 # requests/s offered in the overload phase
    seconds: float = 0.0
    sent: int = 0
    settled: int = 0
    unavailable: int = 0
    timed_out: int = 0
    other: int = 0
    max_inflight: float = 0.0         # highest ledger_rpc_inflight sampled
    max_deciding: float = 0.0         # highest ledger_inflight_messages sampled
    rss_before: int = 0               # bytes, after warm-up
    rss_peak: int = 0
    rss_after: int = 0
    slow_consumers: int = 0           # the server's count, all clients
    reconnected: bool = False         # the ledger's connection id changed
    samples: list[tuple[float, int, float]] = field(default_factory=list)   # (t, rss, rpc in flight)

    def table(self) -> str:
        from rich.console import Console
        from rich.table import Table

        t = Table(title="overload")
        t.add_column("measure")
        t.add_column("value", justify="right")
        mb = 1024 * 1024
        for name, value in [("capacity /s", f"{self.capacity:,.0f}"), ("offered /s", f"{self.rate:,.0f}"),
                            ("seconds", f"{self.seconds:.0f}"), ("sent", f"{self.sent:,}"),
                            ("settled", f"{self.settled:,}"), ("unavailable", f"{self.unavailable:,}"),
                            ("no answer", f"{self.timed_out:,}"), ("other", f"{self.other:,}"),
                            ("max rpc in flight", f"{self.max_inflight:.0f}"),
                            ("max deciding", f"{self.max_deciding:.0f}"),
                            ("RSS before / peak / after MB",
                             f"{self.rss_before / mb:.0f} / {self.rss_peak / mb:.0f} / {self.rss_after / mb:.0f}"),
                            ("RSS growth per settled KB",     # the person cache keeps every decision
                             f"{(self.rss_peak - self.rss_before) / 1024 / max(1, self.settled):.1f}"),
                            ("slow consumers (server)", str(self.slow_consumers)),
                            ("ledger reconnected", str(self.reconnected))]:
            t.add_row(name, value)
        console = Console(width=100, record=True, file=open(os.devnull, "w"))
        console.print(t)
        return console.export_text()


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bodies(prefix: str) -> Iterator[bytes]:
    templates = [s.dumps(s.settlement("@ID@", s.psn_no_of(i, "OVL-"), total="3000.00", ooc="0")) for i in range(PERSONS)]
    n = 0
    while True:
        yield templates[n % PERSONS].replace(b"@ID@", f"{prefix}{n}".encode())
        n += 1


class _Replies:
    """Every reply on one wildcard inbox, taken straight from the read loop; classified on arrival."""

    def __init__(self, nc: Any) -> None:
        self.nc, self.inbox = nc, nc.new_inbox()
        self.pending: dict[str, float] = {}
        self.counts = {"settled": 0, "unavailable": 0, "timed_out": 0, "other": 0}
        self.answered = asyncio.Event()

    async def start(self) -> _Replies:
        from services.nats.fast import subscribe_direct

        await subscribe_direct(self.nc, self.inbox + ".*", self._on_reply)
        return self

    def _on_reply(self, msg: Any) -> None:
        if self.pending.pop(msg.subject, None) is None:
            return                                          # already counted as timed out
        data = msg.data
        if b'"result":"settled"' in data or b'"result":"duplicate"' in data:
            self.counts["settled"] += 1
        elif b'"code":"unavailable"' in data:
            self.counts["unavailable"] += 1
        else:
            self.counts["other"] += 1
        self.answered.set()

    def expire(self, timeout: float) -> None:
        cutoff = time.monotonic() - timeout
        for reply, sent in list(self.pending.items()):
            if sent < cutoff:
                del self.pending[reply]
                self.counts["timed_out"] += 1


async def _closed_loop(nc: Any, bodies: Iterator[bytes], seconds: float, concurrency: int) -> float:
    done = 0
    end = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < end:
            reply = await nc.request("ledger.rpc.settlement", next(bodies), timeout=10)
            if b'"result":"settled"' in reply.data:
                done += 1
    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.monotonic() - started)


async def _open_loop(nc: Any, replies: _Replies, bodies: Iterator[bytes], rate: float, seconds: float,
                     timeout: float) -> int:
    sent, started = 0, time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        for _ in range(int(elapsed * rate) - sent):
            reply = f"{replies.inbox}.{sent}"
            replies.pending[reply] = time.monotonic()
            await nc.publish("ledger.rpc.settlement", next(bodies), reply=reply)
            sent += 1
        replies.expire(timeout)
        await asyncio.sleep(0.005)
    deadline = time.monotonic() + timeout
    while replies.pending and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    replies.expire(0)
    return sent


async def _sample(report: OverloadReport, pid: int, http: Any, stop: asyncio.Event) -> None:
    started = time.monotonic()
    while not stop.is_set():
        rss = _rss(pid)
        report.rss_peak = max(report.rss_peak, rss)
        inflight = 0.0
        with contextlib.suppress(Exception):
            text = (await http.get("/metrics", timeout=2)).text
            for line in text.splitlines():
                if line.startswith("ledger_rpc_inflight "):
                    inflight = float(line.split()[1])
                    report.max_inflight = max(report.max_inflight, inflight)
                elif line.startswith("ledger_inflight_messages "):
                    report.max_deciding = max(report.max_deciding, float(line.split()[1]))
        report.samples.append((round(time.monotonic() - started, 2), rss, inflight))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def run_overload(work_dir: Path, *, database_url: str | None = None, seconds: float = 60.0,
                       multiple: float = 10.0, max_inflight: int = 1024, timeout: float = 5.0,
                       env: dict[str, str] | None = None) -> OverloadReport:
    """Start a nats-server and `ledger run` under ``work_dir``, overload it, stop both; the report.

    ``env``: more settings for `ledger run` (e.g. ``LEDGER_GC_YOUNG``).
    """
    extra = env or {}
    import httpx
    import nats

    work_dir.mkdir(parents=True, exist_ok=True)
    server = NatsCluster(work_dir / "nats", size=1).start()
    server.provision(replicas=1)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "NATS_", "DATABASE_"))}
    env.update(NATS_URL=server.urls, LEDGER_DATA_DIR=str(work_dir / "data"), LEDGER_HTTP_PORT=str(port),
               LEDGER_TOKEN_PLATFORM=TOKEN, LEDGER_RPC_MAX_INFLIGHT=str(max_inflight),
               LEDGER_LOG_LEVEL="warning", PYTHONUNBUFFERED="1")
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    report = OverloadReport(seconds=seconds)
    with (work_dir / "ledger.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli.main", "run"], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
    nc = None
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"ledger run exited: {(work_dir / 'ledger.log').read_text()[-2000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/ready")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError("ledger run did not become ready")
                await asyncio.sleep(0.2)
            nc = await nats.connect(server.urls_for("platform"), pending_size=256 * 1024 * 1024)   # the platform
            for line in s.setup_lines(PERSONS, prefix="OVL-"):
                await nc.request(f"ledger.rpc.{json.loads(line)['msg_type']}", line, timeout=10)
            conn_before = [c["cid"] for c in server.connections("claims-ledger")]
            report.capacity = await _closed_loop(nc, _bodies("CAP-"), 3.0, concurrency=min(128, max_inflight // 2))
            report.rss_before = _rss(proc.pid)
            report.rate = multiple * report.capacity
            replies = await _Replies(nc).start()
            stop = asyncio.Event()
            sampler = asyncio.create_task(_sample(report, proc.pid, http, stop))
            report.sent = await _open_loop(nc, replies, _bodies("OVL-"), report.rate, seconds, timeout)
            stop.set()
            await sampler
            report.rss_after = _rss(proc.pid)
            report.settled, report.unavailable = replies.counts["settled"], replies.counts["unavailable"]
            report.timed_out, report.other = replies.counts["timed_out"], replies.counts["other"]
            report.slow_consumers = server.slow_consumers()
            report.reconnected = [c["cid"] for c in server.connections("claims-ledger")] != conn_before
    finally:
        if nc is not None:
            await nc.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        server.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.runtime.overload")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--multiple", type=float, default=10.0, help="offered load, times the capacity")
    parser.add_argument("--max-inflight", type=int, default=1024)
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a ledger run setting")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ledger-overload-") as tmp:
        report = asyncio.run(run_overload(Path(tmp), seconds=args.seconds, multiple=args.multiple,
                                          max_inflight=args.max_inflight,
                                          env=dict(e.split("=", 1) for e in args.env)))
    print(report.table())
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2))


if __name__ == "__main__":
    main()
