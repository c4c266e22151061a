"""Settlements through NATS end to end, and request/reply latency, each beside a raw nats-py baseline.

For each JetStream sync mode (``sync_interval: always`` as the ledger runs,
and the server default, as in a cluster whose quorum gives durability), on
an embedded nats-server of its own:

1. Start the adjudicator worker (``python -m services.cli.worker``:
   the production code path, its own process) and feed it the hospitals,
   statuses and enrolments of bench_replay's generator through
   ``platform.in`` (not timed).
2. Pause its durable consumer, publish the settlements (100,000; ``--quick``
   5,000) on ``platform.in.settlement``, resume, and time from the first
   ``ledger.out.settlement_result`` to the last: settlements/s in steady
   state (the server takes a moment to serve pull requests held while paused,
   so the clock starts at the first answer, for the baseline too).
3. Baseline, same run, same bytes: ``benchmarks.nats_raw`` — a raw nats-py
   fetch / publish-one-reply / ack loop on an identical work-queue stream and
   consumer — timed the same way. Target: end to end >= 50% of raw.
4. Request/reply latency at a fixed 500 requests/s, open loop (new
   settlements of warm persons on ``ledger.rpc.settlement``): p50 and p99
   beside an echo responder at the same rate, three runs, the worst p99
   reported ("in every run, not a lucky one"). Target: p99 < 10 ms. Each run
   also reads the worker's pause histograms over its window
   (benchmarks/tail.py): garbage collections, event-loop lag, JetStream
   append (fsync) time — where a slow answer waited.
5. At ``sync_interval: always`` only, before the latency runs: request/reply under load, a closed
   loop of 256 requests always in flight (20,000 new settlements; ``--quick`` 2,000), settlements/s
   beside the same raw loop (group commit batches them, ADR 0016; target >= 1.0x raw).
6. Once, after both modes: the same settlements decided in this process
   with no NATS (the replay path), and what that leaves of the target's
   time budget per settlement for all the messaging (ADR 0007).

Notes per row: CPU microseconds per message of the consumer process, of
nats-server and of this process (Linux /proc), for the ledger and for the
baseline. ``BENCH_REPLICAS=2`` runs two adjudicator workers (experiment only:
on two cores they compete with nats-server and with each other's persons).
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig

from benchmarks import tail
from benchmarks.bench_replay import generate, replay
from benchmarks.report import Row

REPO = Path(__file__).resolve().parents[1]
SECRET = "benchmark-person-key-secret-0123456789"
RATE = 500.0                 # requests per second for the latency run
LATENCY_RUNS = 3
RATIO_TARGET = 0.5
P99_TARGET_MS = 10.0


class Counter:
    """Counts messages; times from the first counted after `arm()` to the `target`-th."""

    def __init__(self) -> None:
        self.n = 0
        self.target = 0
        self.done = asyncio.Event()
        self.first: list[bytes] = []
        self.armed_at = 0
        self.t_first = self.t_last = 0.0

    async def on_msg(self, msg: Any) -> None:
        self.n += 1
        if self.n == self.armed_at + 1:
            self.t_first = time.perf_counter()
            self.first.append(msg.data)
        if self.target and self.n >= self.target:
            self.t_last = time.perf_counter()
            self.done.set()

    def arm(self) -> None:
        self.armed_at = self.n

    def elapsed(self) -> tuple[int, float]:
        """(messages after the first, seconds from the first to the last): the steady-state rate."""
        return self.n - self.armed_at - 1, self.t_last - self.t_first

    async def wait(self, target: int, timeout: float) -> None:
        self.target = target
        if self.n >= target:
            return
        self.done.clear()
        await asyncio.wait_for(self.done.wait(), timeout)


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err)
    line = proc.stdout.readline() if proc.stdout else b""
    if line.strip() != b"ready":
        proc.kill()
        raise RuntimeError(f"{args} did not start: {log.read_text()[-2000:]}")
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _publish_all(js: Any, subject: str, lines: list[bytes], chunk: int = 2000) -> float:
    started = time.perf_counter()
    for i in range(0, len(lines), chunk):
        futures = [await js.publish_async(subject, line) for line in lines[i:i + chunk]]
        await asyncio.gather(*futures)
    return time.perf_counter() - started


async def _latency(nc: Any, subject: str, bodies: list[bytes]) -> list[float]:
    """Send at a fixed RATE whatever the answers do (open loop); seconds per answer."""
    out: list[float] = []

    async def one(body: bytes) -> None:
        t = time.perf_counter()
        await nc.request(subject, body, timeout=10)
        out.append(time.perf_counter() - t)

    tasks = []
    start = time.perf_counter()
    for i, body in enumerate(bodies):
        delay = start + i / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(body)))
    await asyncio.gather(*tasks)
    return sorted(out)


def _split(bodies: list[bytes], parts: int) -> list[list[bytes]]:
    size = len(bodies) // parts
    return [bodies[i * size:(i + 1) * size] for i in range(parts)]


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pct(sorted_s: list[float], p: float) -> float:
    return sorted_s[min(len(sorted_s) - 1, int(p * len(sorted_s)))] * 1000


async def _rpc_load(nc: Any, subject: str, bodies: list[bytes], concurrency: int) -> tuple[float, int]:
    """Closed loop, `concurrency` requests always in flight: settlements/s, and how many were not decided."""
    todo = iter(bodies)
    refused = 0

    async def caller() -> None:
        nonlocal refused
        for body in todo:
            reply = await nc.request(subject, body, timeout=60)
            if reply.headers and reply.headers.get("Ledger-Error"):
                refused += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return len(bodies) / (time.perf_counter() - started), refused


# Group commit knobs (ADR 0016) passed on to the worker when set, and named in the notes.
GROUP_KNOBS = ("LEDGER_GROUP_COMMIT", "LEDGER_GROUP_COMMIT_MIN", "LEDGER_GROUP_COMMIT_DEPTH")
RPC_LOAD_CONCURRENCY = 256


async def _mode(sync_always: bool, setup: list[bytes], lines: list[bytes], probes: list[bytes],
                replicas: int = 1, loaded: list[bytes] | None = None) -> list[Row]:
    from services.runtime.embedded import start_nats

    label = "sync always" if sync_always else "sync default"
    tmp = Path(tempfile.mkdtemp(prefix="bench-nats-"))
    server = start_nats(tmp, port=0, sync_always=sync_always)
    # The harness plays the platform and the operator (pauses the consumer, makes the raw baseline's
    # stream), so it connects as the NATS admin; the workers run as the services' user (server.url).
    nc = await nats.connect(server.url_for("admin"), pending_size=64 * 1024 * 1024)
    js = nc.jetstream(publish_async_max_pending=4000)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "NATS_", "DATABASE_"))}
    metrics_port = _free_port()
    env.update(NATS_URL=server.url, LEDGER_PERSON_KEY_SECRET=SECRET, LEDGER_DATA_DIR=str(tmp),
               LEDGER_LOG_LEVEL="warning")
    knobs = {k: os.environ[k] for k in GROUP_KNOBS if os.environ.get(k)}
    env.update(knobs)
    n = len(lines)
    try:
        results = Counter()
        await nc.subscribe("ledger.out.>", cb=results.on_msg, pending_msgs_limit=2_000_000,
                           pending_bytes_limit=2 * 1024 ** 3)
        worker = _spawn(["-m", "services.cli.worker"], {**env, "LEDGER_METRICS_PORT": str(metrics_port)},
                        tmp / "worker.log")
        extra = [_spawn(["-m", "services.cli.worker"], env, tmp / f"worker{i}.log") for i in range(1, replicas)]
        try:
            for line in setup:                          # reference data first: a barrier each, in order
                await js.publish(f"platform.in.{json.loads(line)['msg_type']}", line)
            await results.wait(len(setup), timeout=600)
            await js.pause_consumer("PLATFORM_IN", "adjudicator", "2100-01-01T00:00:00Z")
            publish_s = await _publish_all(js, "platform.in.settlement", lines)
            results.arm()
            cpu0 = (_cpu(worker.pid), _cpu(server.process.pid), _cpu(os.getpid()))
            await js.resume_consumer("PLATFORM_IN", "adjudicator")
            await results.wait(results.armed_at + n, timeout=1800)
            cpu1 = (_cpu(worker.pid), _cpu(server.process.pid), _cpu(os.getpid()))
            e2e_n, e2e_s = results.elapsed()
            sample = [json.loads(b) for b in results.first]
            rpc_rate, rpc_refused = (await _rpc_load(nc, "ledger.rpc.settlement", loaded, RPC_LOAD_CONCURRENCY)
                                     if loaded else (0.0, 0))
            runs = []
            for run_bodies in _split(probes, LATENCY_RUNS) if probes else []:
                before = tail.scrape(metrics_port)
                latencies = await _latency(nc, "ledger.rpc.settlement", run_bodies)
                runs.append((latencies, tail.pauses(before, tail.scrape(metrics_port))))
        finally:
            for proc in (worker, *extra):
                _stop(proc)

        raw = Counter()
        await nc.subscribe("bench.raw.out", cb=raw.on_msg, pending_msgs_limit=2_000_000,
                           pending_bytes_limit=2 * 1024 ** 3)
        await js.add_stream(StreamConfig(name="BENCH_RAW", subjects=["bench.raw.in"],
                                         retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE))
        await js.add_consumer("BENCH_RAW", ConsumerConfig(durable_name="raw", ack_policy=AckPolicy.EXPLICIT,
                                                          ack_wait=30, max_deliver=5, max_ack_pending=20_000))
        await js.pause_consumer("BENCH_RAW", "raw", "2100-01-01T00:00:00Z")
        loop_proc = _spawn(["-m", "benchmarks.nats_raw", server.url_for("admin"), "BENCH_RAW", "raw",
                            "bench.raw.out"], env,
                           tmp / "raw.log")
        try:
            await _publish_all(js, "bench.raw.in", lines)
            raw.arm()
            rcpu0 = (_cpu(loop_proc.pid), _cpu(server.process.pid), _cpu(os.getpid()))
            await js.resume_consumer("BENCH_RAW", "raw")
            await raw.wait(n, timeout=1800)
            rcpu1 = (_cpu(loop_proc.pid), _cpu(server.process.pid), _cpu(os.getpid()))
            raw_n, raw_s = raw.elapsed()
            echo = await _latency(nc, "bench.echo", probes) if probes else []
        finally:
            _stop(loop_proc)
    finally:
        await nc.close()
        server.stop()

    rate, raw_rate = e2e_n / e2e_s, raw_n / raw_s
    ratio = rate / raw_rate
    per_msg = lambda a, b: {k: round((y - x) / n * 1e6) for k, x, y in zip(("consumer", "nats_server", "bench"), a, b)}
    notes = {"settlements": n, "setup_messages": len(setup), "publish_rate": round(n / publish_s),
             "cpu_us_per_msg": per_msg(cpu0, cpu1), "raw_cpu_us_per_msg": per_msg(rcpu0, rcpu1),
             "first_result": sample[:1], "latency_requests": len(probes), "group_commit_knobs": knobs}
    loaded_rows = [Row(
        name=f"nats rpc under load: settlements/s, {RPC_LOAD_CONCURRENCY} requests in flight ({label})",
        value=rpc_rate, unit="settlements/s", baseline_name="raw nats-py fetch/reply/ack", baseline_value=raw_rate,
        target=">= 1.0x raw" if sync_always else "", met=rpc_rate >= raw_rate if sync_always else None,
        notes={"requests": len(loaded), "not_decided": rpc_refused, "group_commit_knobs": knobs})] if loaded else []
    e2e_row = Row(name=f"nats e2e: settlements/s platform.in → decided → ledger.out ({label})", value=rate,
                  unit="settlements/s", baseline_name="raw nats-py fetch/reply/ack", baseline_value=raw_rate,
                  target=f">= {RATIO_TARGET:.0%} of raw", met=ratio >= RATIO_TARGET, notes=notes)
    if not runs:                       # BENCH_NATS_LATENCY=0: throughput rows only
        return loaded_rows + [e2e_row]
    worst, _ = max(runs, key=lambda run: _pct(run[0], 0.99))
    p50, p99 = _pct(worst, 0.50), _pct(worst, 0.99)
    tail_notes = {"runs": [{"p50_ms": round(_pct(lat, 0.50), 2), "p99_ms": round(_pct(lat, 0.99), 2),
                            "max_ms": round(lat[-1] * 1000, 2), "requests": len(lat), **where}
                           for lat, where in runs]}
    return loaded_rows + [
        e2e_row,
        Row(name=f"nats rpc settlement latency p50 at {RATE:.0f}/s ({label})", value=p50, unit="ms",
            baseline_name="echo p50", baseline_value=_pct(echo, 0.50)),
        Row(name=f"nats rpc settlement latency p99 at {RATE:.0f}/s, worst of {LATENCY_RUNS} runs ({label})",
            value=p99, unit="ms", baseline_name="echo p99", baseline_value=_pct(echo, 0.99),
            target=f"< {P99_TARGET_MS:.0f} ms", met=p99 < P99_TARGET_MS, notes=tail_notes),
    ]


async def run(args: Any) -> list[Row]:
    quick = getattr(args, "quick", False)
    settlements = 5_000 if quick else 100_000
    persons = max(500, settlements // 10)
    loaded_n = 2_000 if quick else 20_000
    setup, lines = generate(settlements + 16_000 + loaded_n, persons)
    lines, spare = lines[:settlements], lines[settlements:]
    # BENCH_NATS_LATENCY=0 leaves out the 500/s latency runs (repeated throughput runs on a loaded machine).
    probes = spare[: 1_500 if quick else 15_000] if os.environ.get("BENCH_NATS_LATENCY") != "0" else []
    loaded = spare[16_000:]
    rows = []
    replicas = int(os.environ.get("BENCH_REPLICAS", "1"))
    # BENCH_NATS_SYNC=always: only the mode the ledger runs in (the target), for repeated runs.
    modes = (True,) if os.environ.get("BENCH_NATS_SYNC") == "always" else (True, False)
    for sync_always in modes:
        rows.extend(await _mode(sync_always, setup, lines, probes, replicas, loaded if sync_always else None))
    rows.append(await _decision_alone(setup, lines, next(r for r in reversed(rows) if r.name.startswith("nats e2e"))))
    return rows


async def _decision_alone(setup: list[bytes], lines: list[bytes], e2e: Row) -> Row:
    """The same settlements decided in this process with no NATS at all (`ledger replay`'s path): the
    share of the target's time budget that deciding alone takes, beside what the raw loop spends on
    less messaging than the ledger needs (it stores nothing and waits for no JetStream ack)."""
    _, seconds, _ = await replay(setup, lines)
    us = seconds / len(lines) * 1e6
    raw_rate = e2e.baseline_value or 0.0
    budget = 1e6 / (RATIO_TARGET * raw_rate) if raw_rate else 0.0
    raw_cpu = e2e.notes["raw_cpu_us_per_msg"]["consumer"] if e2e.notes else None
    return Row(name="deciding alone, in process, no NATS (ceiling of nats e2e)", value=len(lines) / seconds,
               unit="settlements/s", baseline_name="raw nats-py fetch/reply/ack (sync default)",
               baseline_value=raw_rate,
               notes={"decision_us": round(us, 1), "target_budget_us_per_settlement": round(budget, 1),
                      "left_for_nats_us": round(budget - us, 1), "raw_loop_consumer_cpu_us": raw_cpu,
                      "why": "at 50% of raw each settlement may take target_budget_us; deciding takes decision_us; "
                             "what is left must receive, store with its JetStream ack, answer and ack — "
                             "more than the raw loop does in raw_loop_consumer_cpu_us"})
