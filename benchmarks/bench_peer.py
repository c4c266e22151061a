"""The peer beside us: the ledger and pyeventsourcing on the same settlements, in the same run.

Workload: shared/bench/peer-workload.md, built by `benchmarks.peer_workload`
(10,000 dibao persons of Linfen 141002, 100,000 settlements, 1,000 re-sends,
101,000 messages in order; the first 1,000 are warm-up). ``--quick``: 1,000
persons, 5,000 settlements, 50 re-sends, 505 warm-up. ``BENCH_PEER_PERSONS`` and
``BENCH_PEER_SETTLEMENTS`` set other sizes (development).

1. The ledger, end to end through NATS at ``sync_interval: always``: the
   adjudicator worker (its own process, as in bench_nats, with the ledger's
   defaults) takes the hospital, the 低保 recognitions and the enrolments (not
   timed), then the warm-up messages on ``platform.in.settlement``; its
   consumer is paused while the window is published, resumed, and timed from
   the first ``ledger.out.settlement_result`` to the last (as bench_nats).
   The last 5,000 messages (``--quick``: 505) go one at a time, closed loop,
   through ``ledger.rpc.settlement``: the ledger's latency per message, in the
   peer's one-at-a-time regime. Its write path needs no PostgreSQL. Its end
   checks (`benchmarks.peer_checks`) run before the peer's long run.
   ``LEDGER_FEED_MAX_INFLIGHT``, ``LEDGER_PUBLISH_TIMEOUT`` and
   ``LEDGER_FEED_ACK_WAIT``, when set, are passed on to the worker (and named
   in the notes): on a disk slower than the defaults assume, 1,024 decisions in
   flight wait longer than the 5 s publish timeout (ADR 0007, "The peer beside us").
2. The peer (`benchmarks.peer_app`, its own process): pyeventsourcing 9.x with
   its PostgreSQL persistence and library defaults, the C build of psycopg, one
   process, sequential, on an embedded PostgreSQL (pgserver) with its durable
   defaults; then its end checks.

Before both, an fdatasync probe of the data disk: both systems pay about one per
stored decision, and it moves with whatever else the machine does. The data
directory is removed after a passing run and kept, named in the error, after a
failing one. Rows: settlements/s (ledger ÷ peer, target ≥ 10×), p50/p99 per
message, CPU per message of each system (application process, server, and the
ledger's driver), peak RSS. Needs the ``bench`` extra.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.bench_nats import SECRET, Counter, _publish_all, _spawn, _stop
from benchmarks.peer_checks import check_ledger, check_peer, replay
from benchmarks.peer_workload import YEAR, Workload, generate, setup_lines, settlement_line
from benchmarks.procstat import cpu_seconds, peak_rss_mb
from benchmarks.report import Row

REPO = Path(__file__).resolve().parents[1]
RATIO_TARGET = 10.0
SAMPLE = 200
TUNING = ("LEDGER_FEED_MAX_INFLIGHT", "LEDGER_PUBLISH_TIMEOUT", "LEDGER_FEED_ACK_WAIT")   # passed on when set


@dataclass(frozen=True)
class Size:
    persons: int
    settlements: int
    duplicates: int
    warmup: int
    rpc_tail: int


def _size(quick: bool) -> Size:
    persons = int(os.environ.get("BENCH_PEER_PERSONS") or (1_000 if quick else 10_000))
    settlements = int(os.environ.get("BENCH_PEER_SETTLEMENTS") or (5_000 if quick else 100_000))
    messages = settlements + settlements // 100
    return Size(persons, settlements, settlements // 100, min(1_000, messages // 10), min(5_000, messages // 10))


class Results(Counter):
    """Counts the ledger's settlement results and keeps them for the end checks."""

    def __init__(self) -> None:
        super().__init__()
        self.data: list[bytes] = []

    async def on_msg(self, msg: Any) -> None:
        self.data.append(msg.data)
        await super().on_msg(msg)


async def run(args: Any) -> list[Row]:
    if importlib.util.find_spec("eventsourcing") is None or importlib.util.find_spec("psycopg") is None:
        raise RuntimeError("bench_peer needs the bench extra (eventsourcing[postgres], psycopg[binary]): "
                           "pip install -e '.[bench]', as `make bench` does")
    size = _size(getattr(args, "quick", False))
    workload = generate(size.persons, size.settlements, size.duplicates, size.warmup)
    settled_persons = sorted({m.psn_no for m in workload.messages})
    sample = sorted(random.Random(2).sample(settled_persons, min(SAMPLE, len(settled_persons))))
    lines = [settlement_line(m) for m in workload.messages]
    setup = setup_lines(workload)
    tmp = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    console = Console()
    disk = fdatasync_ms(tmp)
    console.print(f"peer workload: {size.persons:,} persons, {len(lines):,} messages "
                  f"({workload.unique:,} settlements, {len(lines) - workload.unique:,} re-sends), "
                  f"{size.warmup:,} warm-up; this disk: fdatasync of 8 KiB p50 {disk['p50']:.2f} ms, "
                  f"p99 {disk['p99']:.2f} ms")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        ledger = await _run_ledger(tmp, setup, lines, size, progress)
        replayed = await asyncio.to_thread(replay, tmp, setup, lines)
        checks = check_ledger(workload, sample, ledger, replayed, tmp)      # before the peer's long run
        peer = await asyncio.to_thread(_run_peer, tmp, lines, size, sample, progress)
        checks |= check_peer(workload, sample, peer, tmp)
    console.print(f"bench_peer end checks passed: {checks}")
    shutil.rmtree(tmp, ignore_errors=True)          # kept when a check fails, to look into
    return _rows(size, workload, peer, ledger, checks | {"disk_fdatasync_ms": disk})


def fdatasync_ms(directory: Path, n: int = 200) -> dict[str, float]:
    """How long this disk takes to make 8 KiB durable now: both systems pay it per stored decision."""
    probe = directory / "fdatasync-probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600)
    times = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(fd, b"\0" * 8192)
            os.fdatasync(fd)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        probe.unlink()
    times.sort()
    return {"p50": round(times[n // 2], 3), "p99": round(times[int(n * 0.99)], 3)}


# ---- the peer ---------------------------------------------------------------------------------------

def _run_peer(tmp: Path, lines: list[bytes], size: Size, sample: list[str], progress: Progress) -> dict:
    from services.runtime.embedded import start_postgres

    pg = start_postgres(tmp / "peer", delete_on_stop=True)
    try:
        info = pg.server.get_postmaster_info()
        messages = tmp / "peer-messages.jsonl"
        messages.write_bytes(b"\n".join(lines) + b"\n")
        job = tmp / "peer-job.json"
        job.write_text(json.dumps({"messages": str(messages), "warmup": size.warmup, "year": YEAR,
                                   "postmaster_pid": info.pid, "sample": sample}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "PERSISTENCE_", "PG"))}
        env.update(PERSISTENCE_MODULE="eventsourcing.postgres", POSTGRES_DBNAME="postgres",
                   POSTGRES_HOST=str(info.socket_dir or "localhost"), POSTGRES_PORT=str(info.port),
                   POSTGRES_USER="postgres", POSTGRES_PASSWORD="")     # trust auth on a unix socket
        task = progress.add_task("pyeventsourcing", total=len(lines))
        log = tmp / "peer.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "benchmarks.peer_app", str(job)], cwd=REPO, env=env,
                                    stdout=subprocess.PIPE, stderr=err)
            result = None
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode().strip()
                if line.startswith("progress "):
                    progress.update(task, completed=int(line.split()[1]))
                elif line.startswith("result "):
                    result = json.loads(line.removeprefix("result "))
            proc.wait()
        progress.update(task, completed=len(lines))
        if proc.returncode != 0 or result is None:
            raise RuntimeError(f"bench_peer: the pyeventsourcing process failed ({proc.returncode}): "
                               f"{log.read_text()[-3000:]}")
        return result
    finally:
        pg.stop()


# ---- the ledger -------------------------------------------------------------------------------------

async def _publish_setup(js: Any, setup: list[bytes], chunk: int = 2000) -> None:
    for i in range(0, len(setup), chunk):
        futures = [await js.publish_async(f"platform.in.{json.loads(line)['msg_type']}", line)
                   for line in setup[i:i + chunk]]
        await asyncio.gather(*futures)


async def _follow(progress: Progress, task: Any, results: Counter, total: int) -> None:
    try:
        while True:
            progress.update(task, completed=min(results.n, total))
            await asyncio.sleep(0.25)
    finally:
        progress.update(task, completed=min(results.n, total))


async def _run_ledger(tmp: Path, setup: list[bytes], lines: list[bytes], size: Size, progress: Progress) -> dict:
    from services.runtime.embedded import start_nats

    server = start_nats(tmp / "ledger", port=0, sync_always=True)
    # The harness plays the platform (and pauses nothing): it connects as the NATS admin, as bench_nats does;
    # the worker runs as the services' user (server.url), which may not publish on platform.in.
    nc = await nats.connect(server.url_for("admin"), pending_size=64 * 1024 * 1024)
    js = nc.jetstream(publish_async_max_pending=4000)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "NATS_", "DATABASE_"))}
    env.update(NATS_URL=server.url, LEDGER_PERSON_KEY_SECRET=SECRET, LEDGER_DATA_DIR=str(tmp / "ledger"),
               LEDGER_LOG_LEVEL="warning", **{k: os.environ[k] for k in TUNING if os.environ.get(k)})
    feed_lines, tail = lines[:len(lines) - size.rpc_tail], lines[len(lines) - size.rpc_tail:]
    window = len(feed_lines) - size.warmup
    try:
        reference = Counter()
        reference_sub = await nc.subscribe("ledger.out.>", cb=reference.on_msg, pending_msgs_limit=2_000_000,
                                           pending_bytes_limit=2 * 1024 ** 3)
        results = Results()
        await nc.subscribe("ledger.out.settlement_result", cb=results.on_msg, pending_msgs_limit=2_000_000,
                           pending_bytes_limit=2 * 1024 ** 3)
        worker = _spawn(["-m", "services.cli.worker"], env, tmp / "worker.log")
        try:
            task = progress.add_task("ledger reference data", total=len(setup))
            follow = asyncio.create_task(_follow(progress, task, reference, len(setup)))
            await js.publish("platform.in.medins", setup[0])          # a barrier: before the persons
            await reference.wait(1, timeout=60)
            await _publish_setup(js, setup[1:])
            await reference.wait(len(setup), timeout=900)
            follow.cancel()
            await asyncio.gather(follow, return_exceptions=True)
            await reference_sub.unsubscribe()
            task = progress.add_task("ledger via platform.in", total=len(feed_lines))
            follow = asyncio.create_task(_follow(progress, task, results, len(feed_lines)))
            await _publish_all(js, "platform.in.settlement", feed_lines[:size.warmup])
            await results.wait(size.warmup, timeout=600)
            await js.pause_consumer("PLATFORM_IN", "adjudicator", "2100-01-01T00:00:00Z")
            await _publish_all(js, "platform.in.settlement", feed_lines[size.warmup:])
            results.arm()
            cpu0 = (cpu_seconds(worker.pid), cpu_seconds(server.process.pid), time.process_time())
            await js.resume_consumer("PLATFORM_IN", "adjudicator")
            await results.wait(results.armed_at + window, timeout=1800)
            cpu1 = (cpu_seconds(worker.pid), cpu_seconds(server.process.pid), time.process_time())
            follow.cancel()
            await asyncio.gather(follow, return_exceptions=True)
            feed_n, feed_s = results.elapsed()
            task = progress.add_task("ledger via ledger.rpc, one at a time", total=len(tail))
            replies, latencies = [], []
            for i, line in enumerate(tail):
                t0 = time.perf_counter()
                reply = await nc.request("ledger.rpc.settlement", line, timeout=10)
                latencies.append(time.perf_counter() - t0)
                replies.append(reply.data)
                if i % 100 == 0:
                    progress.update(task, completed=i)
            progress.update(task, completed=len(tail))
            rss = (peak_rss_mb(worker.pid), peak_rss_mb(server.process.pid))
        finally:
            _stop(worker)
    finally:
        await nc.close()
        server.stop()
    latencies.sort()
    return {"window_messages": feed_n, "window_seconds": feed_s, "rpc_messages": len(tail),
            "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000,
            "client_cpu_s": cpu1[0] - cpu0[0], "server_cpu_s": cpu1[1] - cpu0[1], "driver_cpu_s": cpu1[2] - cpu0[2],
            "cpu_messages": window, "peak_rss_mb": rss[0], "server_peak_rss_mb": rss[1],
            "results": results.data + replies, "worker_log": _log_events(tmp / "worker.log"),
            "tuning": {k: os.environ[k] for k in TUNING if os.environ.get(k)}}


def _log_events(log: Path) -> dict[str, int]:
    """Warnings and errors of the worker by event (a healthy run has none): retries, poison messages."""
    counts: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line).get("event", "?")
        except ValueError:
            event = "unparsed"
        counts[event] = counts.get(event, 0) + 1
    return counts


# ---- rows -------------------------------------------------------------------------------------------

def _rows(size: Size, workload: Workload, peer: dict, ledger: dict, checks: dict) -> list[Row]:
    rate = ledger["window_messages"] / ledger["window_seconds"]
    peer_rate = peer["window_messages"] / peer["window_seconds"]
    per_msg = lambda seconds, n: round(seconds / n * 1e6)  # noqa: E731
    n_ledger, n_peer = ledger["cpu_messages"], peer["window_messages"]
    cpu = {"ledger_worker_s": round(ledger["client_cpu_s"], 2), "nats_server_s": round(ledger["server_cpu_s"], 2),
           "ledger_driver_s": round(ledger["driver_cpu_s"], 2), "ledger_messages": n_ledger,
           "peer_process_s": round(peer["client_cpu_s"], 2), "postgres_s": round(peer["server_cpu_s"], 2),
           "peer_messages": n_peer,
           "us_per_msg": {"ledger_worker": per_msg(ledger["client_cpu_s"], n_ledger),
                          "nats_server": per_msg(ledger["server_cpu_s"], n_ledger),
                          "ledger_driver": per_msg(ledger["driver_cpu_s"], n_ledger),
                          "peer_process": per_msg(peer["client_cpu_s"], n_peer),
                          "postgres": per_msg(peer["server_cpu_s"], n_peer)}}
    notes = {"persons": size.persons, "messages": len(workload.messages), "settlements": workload.unique,
             "warmup": size.warmup, "ledger_window_messages": ledger["window_messages"] + 1,
             "ledger_window_seconds": round(ledger["window_seconds"], 2),
             "peer_window_messages": peer["window_messages"], "peer_window_seconds": round(peer["window_seconds"], 2),
             "ledger_transport": "platform.in feed, sync_interval: always",
             "ledger_tuning": ledger["tuning"] or "defaults", "ledger_worker_log_events": ledger["worker_log"],
             "peer": f"pyeventsourcing, {peer['persistence']}, PostgreSQL {peer['settings']['server_version']}, "
                     f"fsync={peer['settings']['fsync']}, synchronous_commit={peer['settings']['synchronous_commit']}",
             "checks": checks}
    return [
        Row(name="peer: ledger vs pyeventsourcing settlements/s", value=rate, unit="settlements/s",
            baseline_name="pyeventsourcing + PostgreSQL", baseline_value=peer_rate, target=f"≥ {RATIO_TARGET:.0f}×",
            met=rate / peer_rate >= RATIO_TARGET, notes=notes),
        Row(name="peer: latency p50 per message (ledger rpc one at a time vs pyeventsourcing)", value=ledger["p50_ms"],
            unit="ms", baseline_name="pyeventsourcing p50", baseline_value=peer["p50_ms"],
            notes={"ledger_rpc_messages": ledger["rpc_messages"], "peer_messages": n_peer,
                   "why": "ledger: request/reply on ledger.rpc.settlement, closed loop, NATS round trip included; "
                          "peer: one settle() call in its process"}),
        Row(name="peer: latency p99 per message (ledger rpc one at a time vs pyeventsourcing)", value=ledger["p99_ms"],
            unit="ms", baseline_name="pyeventsourcing p99", baseline_value=peer["p99_ms"]),
        Row(name="peer: CPU µs per message, ledger worker + nats-server vs pyeventsourcing + PostgreSQL",
            value=(ledger["client_cpu_s"] + ledger["server_cpu_s"]) / n_ledger * 1e6, unit="µs",
            baseline_name="pyeventsourcing + PostgreSQL",
            baseline_value=(peer["client_cpu_s"] + peer["server_cpu_s"]) / n_peer * 1e6, notes=cpu),
        Row(name="peer: peak RSS, ledger worker vs pyeventsourcing process", value=ledger["peak_rss_mb"], unit="MB",
            baseline_name="pyeventsourcing process", baseline_value=peer["peak_rss_mb"],
            notes={"nats_server_mb": round(ledger["server_peak_rss_mb"], 1),
                   "postgres_largest_process_mb": round(peer["server_backend_peak_rss_mb"], 1)}),
    ]
