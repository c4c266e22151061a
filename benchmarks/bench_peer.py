"""The peer beside us: the ledger and pyeventsourcing on the same settlements, in the same run.

Workload: shared/bench/peer-workload.md, built by `benchmarks.peer_workload`
(10,000 dibao persons of Linfen 141002, 100,000 settlements, 1,000 re-sends,
101,000 messages in order; the first 1,000 are warm-up). ``--quick``: 1,000
persons, 5,000 settlements, 50 re-sends, 500 warm-up. ``BENCH_PEER_PERSONS`` and
``BENCH_PEER_SETTLEMENTS`` set other sizes (development).

1. The peer (`benchmarks.peer_app`, its own process): pyeventsourcing 9.x with
   its PostgreSQL persistence and library defaults, the C build of psycopg, one
   process, sequential, on an embedded PostgreSQL (pgserver) with its durable
   defaults (``fsync``, ``synchronous_commit`` on: checked).
2. The ledger, end to end through NATS at ``sync_interval: always``: the
   adjudicator worker (its own process, as in bench_nats) takes the hospital,
   the 低保 recognitions and the enrolments (not timed), then the warm-up
   messages on ``platform.in.settlement``; its consumer is paused while the
   window is published, resumed, and timed from the first
   ``ledger.out.settlement_result`` to the last (as bench_nats). The last
   5,000 messages (``--quick``: 500) go one at a time, closed loop, through
   ``ledger.rpc.settlement``: the ledger's latency per message, the same
   one-at-a-time regime as the peer's. Its write path needs no PostgreSQL.
3. End checks, which fail the benchmark when they fail: the peer's store
   holds 3 events per settlement plus one creation event per person who
   settled; its cap used of 200 sampled persons equals `model_caps`. The
   ledger answered every message (settled or duplicate, never rejected); its
   results for the sampled persons equal `ledger replay` of the same messages;
   where its policy pays no 大病 (cumulative self-pay under the 低保 deductible,
   Linfen 二(三)) its assistance equals the workload's 70% rule. Elsewhere the
   ledger legitimately pays less assistance than the placeholder rule: it pays
   大病 first and 70% of what remains (Linfen 二(四)1).

Rows: settlements/s (ledger ÷ peer, target >= 10×), p50/p99 per message, CPU
per message of each system (application process, server, and the ledger's
driver), peak RSS. Needs the ``bench`` extra.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.bench_nats import SECRET, Counter, _publish_all, _spawn, _stop
from benchmarks.peer_workload import ASSISTANCE_RATIO, YEAR, Workload, generate, model_caps, setup_lines, settlement_line
from benchmarks.procstat import cpu_seconds, peak_rss_mb
from benchmarks.report import Row
from events.money import ZERO, money

REPO = Path(__file__).resolve().parents[1]
RATIO_TARGET = 10.0
SAMPLE = 200


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
    console.print(f"peer workload: {size.persons:,} persons, {len(lines):,} messages "
                  f"({workload.unique:,} settlements, {len(lines) - workload.unique:,} re-sends), "
                  f"{size.warmup:,} warm-up")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        peer = await asyncio.to_thread(_run_peer, tmp, lines, size, sample, progress)
        ledger = await _run_ledger(tmp, setup, lines, size, progress)
    replayed = await asyncio.to_thread(_replay, tmp, setup, lines)
    checks = _check(workload, sample, peer, ledger, replayed)
    console.print(f"bench_peer end checks passed: {checks}")
    return _rows(size, workload, peer, ledger, checks)


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
    nc = await nats.connect(server.url, pending_size=64 * 1024 * 1024)
    js = nc.jetstream(publish_async_max_pending=4000)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "NATS_", "DATABASE_"))}
    env.update(NATS_URL=server.url, LEDGER_PERSON_KEY_SECRET=SECRET, LEDGER_DATA_DIR=str(tmp / "ledger"),
               LEDGER_LOG_LEVEL="warning")
    feed_lines, tail = lines[:len(lines) - size.rpc_tail], lines[len(lines) - size.rpc_tail:]
    window = len(feed_lines) - size.warmup
    try:
        reference = Counter()
        reference_sub = await nc.subscribe("ledger.out.>", cb=reference.on_msg, pending_msgs_limit=2_000_000,
                                           pending_bytes_limit=2 * 1024 ** 3)
        results = Results()
        await nc.subscribe("ledger.out.settlement_result", cb=results.on_msg, pending_msgs_limit=2_000_000,
                           pending_bytes_limit=2 * 1024 ** 3)
        worker = _spawn(["-m", "services.adjudicator.worker"], env, tmp / "worker.log")
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
            "results": results.data + replies}


def _replay(tmp: Path, setup: list[bytes], lines: list[bytes]) -> list[bytes]:
    """`ledger replay` of the same messages, in their order: the ledger's own yardstick."""
    source, out = tmp / "replay-in.jsonl", tmp / "replay-out.jsonl"
    source.write_bytes(b"\n".join(setup + lines) + b"\n")
    with open(out, "wb") as stdout:
        done = subprocess.run([sys.executable, "-m", "services.cli.main", "replay", str(source)], cwd=REPO,
                              stdout=stdout, stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise RuntimeError(f"bench_peer: ledger replay failed: {done.stderr.decode()[-2000:]}")
    return out.read_bytes().splitlines()


# ---- end checks -------------------------------------------------------------------------------------

def _by_key(raw: list[bytes], persons: set[str] | None) -> dict[tuple[str, str], dict]:
    out = {}
    for data in raw:
        result = json.loads(data)
        if result.get("msg_type") == "settlement_result" and (persons is None or result["psn_no"] in persons):
            out[(result["setl_id"], result["result"])] = result
    return out


def _check(workload: Workload, sample: list[str], peer: dict, ledger: dict, replayed: list[bytes]) -> dict:
    failures: list[str] = []
    unique, messages = workload.unique, len(workload.messages)
    persons = len({m.psn_no for m in workload.messages})
    model = model_caps(workload.messages)

    # the peer: 3 events a settlement, one creation a person who settled, the rule's cap used
    topics = peer["events_by_topic"]
    want = {"Created": persons, "StaySettled": unique, "CriticalIllnessPaid": unique, "AssistancePaid": unique}
    if topics != want or sum(topics.values()) != 3 * unique + persons:
        failures.append(f"peer store holds {topics}, expected {want}")
    if peer["answers"] != {"settled": unique, "duplicate": messages - unique}:
        failures.append(f"peer answered {peer['answers']}")
    wrong = [p for p in sample if peer["caps"][p] != str(model[p])]
    if wrong:
        failures.append(f"peer cap used differs from the model for {len(wrong)} of {len(sample)} persons")
    if (peer["settings"]["fsync"], peer["settings"]["synchronous_commit"]) != ("on", "on"):
        failures.append(f"PostgreSQL was not durable: {peer['settings']}")

    # the ledger: every message answered; its own replay agrees; the rule's figures where its policy is the same
    mine = _by_key(ledger["results"], None)
    kinds = {"settled": 0, "duplicate": 0}
    for _, kind in mine:
        kinds[kind] = kinds.get(kind, 0) + 1
    if len(ledger["results"]) != messages or kinds != {"settled": unique, "duplicate": messages - unique}:
        failures.append(f"ledger answered {len(ledger['results'])} messages: {kinds}")
    chosen = set(sample)
    ours = {k: v for k, v in mine.items() if v["psn_no"] in chosen}
    theirs = _by_key(replayed, chosen)
    differ = [k for k in theirs.keys() | ours.keys() if ours.get(k) != theirs.get(k)]
    if differ or not ours:
        failures.append(f"ledger differs from `ledger replay` on {len(differ)} results of the sampled persons "
                        f"(first: {sorted(differ)[:3]})")
    amount = {m.setl_id: m.amount for m in workload.messages}
    same_rule = disagree = 0
    for (setl_id, kind), result in mine.items():
        if kind == "settled" and result["hifmi_pay"] == "0.00":
            same_rule += 1
            disagree += result["maf_pay"] != str(money(ASSISTANCE_RATIO * amount[setl_id]))
    if disagree or not same_rule:
        failures.append(f"ledger assistance differs from the 70% rule on {disagree} of {same_rule} stays without 大病")
    last_cap: dict[str, Decimal] = {}
    paid_ci: set[str] = set()
    for (_, kind), result in sorted(ours.items()):
        if kind == "settled":
            psn = result["psn_no"]
            last_cap[psn] = max(last_cap.get(psn, ZERO), Decimal(result["cap"]["used"]))
            if result["hifmi_pay"] != "0.00":
                paid_ci.add(result["psn_no"])
    no_ci = [p for p in sample if p not in paid_ci]
    cap_mismatch = [p for p in no_ci if last_cap.get(p) != model[p]]
    if cap_mismatch:
        failures.append(f"ledger cap used differs from the model for {len(cap_mismatch)} sampled persons without 大病")
    if failures:
        raise RuntimeError("bench_peer end checks FAILED:\n  " + "\n  ".join(failures))
    return {"peer_events": sum(topics.values()), "peer_caps_checked": len(sample),
            "ledger_results_vs_replay": len(ours), "ledger_stays_without_ci_equal_to_rule": same_rule,
            "ledger_sampled_persons_without_ci_cap_equal_to_model": len(no_ci),
            "sampled_cap_used_model": str(sum(model[p] for p in sample)),
            "sampled_cap_used_ledger": str(sum(last_cap.get(p, ZERO) for p in sample))}


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
