"""Read side: a full rebuild beside a raw ordered read of the same stream, and person-year reads.

1. A stream of ~1,000,000 events (`--quick`: 50,000): sample traffic decided once by the engine
   (2,000 persons), then cloned with renamed persons onto their own subjects, published on an
   embedded nats-server with the default sync interval (publishing is not what is measured).
2. Baseline, same run: an ordered push consumer reading the whole stream and doing nothing
   (msg/s), read again right before each rebuild (the machine is shared); the projector's own
   bounded pull reader doing nothing is in the notes. Ceilings, same run: decoding and folding
   the first 100,000 messages alone, already in memory, the rebuild's lean way and the live
   projector's full way.
3. `ledger rebuild --json --workers N` in a subprocess (all three projections, one pass, fresh
   tables, indexes after the load, swap), N = 1 then 2: its messages/s from its own clock, its
   phases, its own peak RSS and CPU time (wait4; with N = 2 the spawned worker is not counted).
   Targets (N = 1): >= 0.3x the raw rate; peak RSS < 300 MB.
4. `GET /v1/persons/{psn_no}/years/{year}` served by uvicorn in a subprocess, driven open-loop
   at 500 requests/s for a few seconds, beside `GET /bare` (a constant) at the same rate:
   p50/p99, target p99 < 10 ms.
"""
from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from benchmarks.read_latency import RATE, pct, reads
from benchmarks.procstat import children, cpu_seconds, peak_rss_mb, tree_cpu_seconds
from benchmarks.report import Row
from events.chain import encode_sealed, seal_stored
from events.ledger import COMMIT_DECODER, COMMIT_ENCODER
from projections.sample import decided, subject_of, traffic
from projections.catalog import select
from projections.lean_rows import Rows
from projections.load import Share, ShareFold
from projections.runner import decode_batch
from projections.sql import csv_line
from projections.source import StreamReader, last_sequence
from services.runtime.embedded import start_nats, start_postgres
from services.runtime.secrets import person_key
from services.nats.streams import ensure_ledger_stream

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-projections-person-key-secret-01"
SEAL_SECRET = "bench-projections-seal-secret-0001"
BASE_PERSONS = 2000
MARK = b"Z@"          # in every person id of the template; replaced per clone


async def _template() -> list[tuple[str | None, bytes, int, str]]:
    store = await decided(traffic(BASE_PERSONS, seed=1, prefix="Z@", bad_every=100))
    return [(p, COMMIT_ENCODER.encode(c), len(c.events), subject_of(None, c, b"") if p is None else "")
            for p, c in store.commits]


def _sealed(subject: str, data: bytes, heads: dict[str, str]) -> bytes:
    """A cloned commit as the ledger would have written it: its events hashed again onto the clone's chain
    (the clone's person ids changed their bytes), sealed for `subject` (ADR 0010)."""
    commit = COMMIT_DECODER.decode(data)
    events, stored, heads[subject] = seal_stored(commit.events, heads.get(subject, ""))
    return encode_sealed(SEAL_SECRET.encode(), subject, msgspec.structs.replace(commit, events=events), stored)


async def _publish(js: Any, template: list, events_wanted: int) -> tuple[int, int, list[str]]:
    """Clone the template until `events_wanted`; returns (messages, events, some psn_no to read)."""
    secret = SECRET.encode()
    messages = events = 0
    pending: list = []
    persons: list[str] = []
    clone = 0
    while events < events_wanted:
        tag = f"{clone:02d}".encode()
        keys: dict[str, str] = {}
        heads: dict[str, str] = {}
        for psn, data, n, ref_subject in template:
            if psn is None:
                if clone:
                    continue
                subject = ref_subject
            else:
                name = psn.replace("Z@", f"Z{clone:02d}")
                key = keys.get(name) or keys.setdefault(name, person_key(secret, name))
                subject = f"ledger.person.{key}"
                if len(persons) < 2000 and b"hospital_stay_settled" in data:
                    persons.append(name)
            sealed = _sealed(subject, data.replace(MARK, b"Z" + tag), heads if psn is not None else {})
            pending.append(await js.publish_async(subject, sealed))
            messages += 1
            events += n
            if len(pending) >= 3000:
                await asyncio.gather(*pending)
                pending.clear()
        clone += 1
    await asyncio.gather(*pending)
    return messages, events, sorted(set(persons))


async def _raw_read(js: Any, last: int) -> float:
    """The fastest in-order read nats-py offers: an ordered push consumer whose callback only counts."""
    done = asyncio.Event()

    async def count(msg: Any) -> None:
        if msg.metadata.sequence.stream >= last:
            done.set()

    started = time.perf_counter()
    sub = await js.subscribe("ledger.>", stream="LEDGER", cb=count, ordered_consumer=True,
                             config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
                             pending_msgs_limit=0, pending_bytes_limit=0)
    await asyncio.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - started
    await sub.unsubscribe()
    return last / elapsed


async def _pull_read(js: Any, last: int, keep: int) -> tuple[float, list]:
    """The projector's own reader (pull consumer, bounded batches) doing nothing with what it reads;
    also returns the first `keep` messages, batched as the rebuild reads them, for `_fold_alone`."""
    kept: list = []
    started = time.perf_counter()
    async with StreamReader(js, 1, max_batch=5000) as reader:
        seq = 0
        while seq < last:
            batch = await reader.batch(timeout=5)
            if not batch:
                raise TimeoutError("the stream stopped delivering")
            seq = batch[-1].seq
            if sum(map(len, kept)) < keep:
                kept.append(batch)
    return last / (time.perf_counter() - started), kept


def _fold_alone(batches: list) -> float:
    """The live projector's CPU work that no reader or database can remove: decode each commit whole and
    run every projection's fold, on messages already in memory (msg/s)."""
    projections = select(None)
    states = {p.name: p.new_state() for p in projections}
    started = time.process_time()
    for raws in batches:
        msgs = decode_batch(raws, SEAL_SECRET.encode())
        for p in projections:
            for m in msgs:
                p.fold(states[p.name], m)
    return sum(map(len, batches)) / (time.process_time() - started)


async def _lean_alone(batches: list) -> float:
    """The same for a rebuild's lean path (one share of everything): decode only what each projection
    needs and make its COPY lines and merged upserts, in memory (msg/s of CPU time)."""
    fold = ShareFold([p.name for p in select(None)], Share(0, 1, 1, 10**12), 10**12, SEAL_SECRET.encode())
    started = time.process_time()
    for raws in batches:
        msgs, escapes = fold.decode(raws)
        rows = Rows()
        fold.fold(await fold.heads.screen(None, msgs), escapes, (rows, [], [], [], []))
        for _table, _add, _put, merged in rows.merged():
            [csv_line(r) for r in merged]
    return sum(map(len, batches)) / (time.process_time() - started)


def _rebuild(env: dict[str, str], workers: int) -> tuple[dict, dict[str, float], float]:
    """Run `ledger rebuild --json`; its summary, peak RSS in MB (its own, its workers'), CPU seconds.

    Peak RSS is the kernel's VmHWM of each process, read while they run: the rusage of wait4 reports
    at least what the parent held when it forked (the bench's own ~330 MB, inherited through exec),
    which is what the earlier "479 MB once within make bench" was. CPU is wait4's (workers included)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli.main", "rebuild", "--json",
                                 "--workers", str(workers)], env=env, cwd=REPO, stdout=out, stderr=err)
        peaks: dict[str, float] = {"own": 0.0, "workers": 0.0}
        while True:
            peaks["own"] = max(peaks["own"], peak_rss_mb(proc.pid))
            for child in children(proc.pid):
                peaks["workers"] = max(peaks["workers"], peak_rss_mb(child))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise RuntimeError(f"ledger rebuild failed ({proc.returncode}): {err.read().decode()[-3000:]}")
        return msgspec.json.decode(out.read()), peaks, usage.ru_utime + usage.ru_stime


def _postmaster(tmp: str) -> int | None:
    found = next(Path(tmp).glob("**/postmaster.pid"), None)
    return int(found.read_text().split()[0]) if found else None


async def _settle(url: str) -> None:
    """Let PostgreSQL absorb a rebuild's write burst before the next measurement."""
    conn = await asyncpg.connect(url)
    for statement in ("VACUUM ANALYZE person_year", "VACUUM ANALYZE person_year_rule", "CHECKPOINT"):
        await conn.execute(statement)
    await conn.close()


async def run(args: Any) -> list[Row]:
    wanted = getattr(args, "events", None) or (50_000 if args.quick else 1_000_000)
    rebuilds: dict[int, tuple] = {}        # workers → raw, summary, rss, cpu, wall, other processes' CPU
    with tempfile.TemporaryDirectory(prefix="bench-projections-") as tmp:
        nats_server = start_nats(Path(tmp), port=0, sync_always=False)
        pg = start_postgres(Path(tmp), delete_on_stop=True)
        try:
            nc = await nats.connect(nats_server.url)
            js = nc.jetstream()
            await ensure_ledger_stream(js)
            t0 = time.perf_counter()
            messages, events, persons = await _publish(js, await _template(), wanted)
            print(f"  published {messages:,} messages / {events:,} events in {time.perf_counter() - t0:.1f}s",
                  flush=True)
            last = await last_sequence(js)
            pull, kept = await _pull_read(js, last, keep=100_000)
            alone, lean = _fold_alone(kept), await _lean_alone(kept)
            del kept
            env = {**os.environ, "NATS_URL": nats_server.url, "DATABASE_URL": pg.url,
                   "LEDGER_PERSON_KEY_SECRET": SECRET, "LEDGER_SEAL_SECRET": SEAL_SECRET,
                   "PYTHONPATH": str(REPO)}
            postmaster, server = _postmaster(tmp), nats_server.process.pid
            for workers in (1, 2):
                before = time.process_time(), cpu_seconds(server)
                raw = await _raw_read(js, last)
                raw_cpu = {"reader_us": (time.process_time() - before[0]) / last * 1e6,
                           "nats_us": (cpu_seconds(server) - before[1]) / last * 1e6}
                t0 = time.perf_counter()
                before = (tree_cpu_seconds(postmaster) if postmaster else 0.0), cpu_seconds(server)
                summary, rss, cpu = _rebuild(env, workers)
                cpus = {"postgres_us_per_message": round(((tree_cpu_seconds(postmaster) if postmaster else 0.0) - before[0]) / last * 1e6, 1),
                        "nats_us_per_message": round((cpu_seconds(server) - before[1]) / last * 1e6, 1),
                        "raw_read_cpu_us_per_message": {k: round(v, 1) for k, v in raw_cpu.items()},
                        "load_average": os.getloadavg()[0]}
                rebuilds[workers] = (raw, summary, rss, cpu, time.perf_counter() - t0, cpus)
                print(f"  raw read {raw:,.0f} msg/s; rebuilt with {workers} worker(s) in "
                      f"{rebuilds[workers][4]:.1f}s: {summary}", flush=True)
                await _settle(pg.url)
            await nc.close()
            lat = await reads(env, random.Random(1).sample(persons, min(len(persons), 1000)),
                               3.0 if args.quick else 10.0)
        finally:
            pg.stop()
            nats_server.stop()
    p99, bare99 = pct(lat["years"], 0.99), pct(lat["bare"], 0.99)
    rows = [
        Row(name="lean decode + fold alone, in memory (ceiling of a rebuild)", value=lean, unit="msg/s",
            baseline_name="raw ordered read", baseline_value=rebuilds[1][0],
            notes={"why": "CPU time of the rebuild's own work, no reader, no database"}),
        Row(name="full decode + fold alone, in memory (the live projector's)", value=alone, unit="msg/s",
            baseline_name="raw ordered read", baseline_value=rebuilds[1][0]),
    ]
    for workers, (raw, summary, rss, cpu, wall, cpus) in rebuilds.items():
        rate = summary["messages_per_second"]
        notes = {"messages": messages, "events": events, "projector_reader_msg_per_s": round(pull, 1),
                 "rebuild_wall_s": round(wall, 1), "phases_s": summary.get("phases"),
                 "cpu_us_per_message": round(cpu / summary["seq"] * 1e6, 1), **cpus,
                 "rebuild_events_per_s": round(summary["events"] / (summary["seq"] / rate), 1) if rate else None}
        name = f"rebuild all projections, {workers} worker{'s' if workers > 1 else ''} ({events:,} events)"
        if workers == 1:
            rows.append(Row(name=name, value=rate, unit="msg/s", baseline_name="raw ordered read",
                            baseline_value=raw, target=">= 0.3x raw", met=rate >= 0.3 * raw, notes=notes))
            rows.append(Row(name="rebuild peak RSS (own process, 1 worker)", value=rss["own"], unit="MB",
                            target="< 300 MB", met=rss["own"] < 300, notes={"how": "VmHWM while it runs"}))
        else:
            notes["one_worker_msg_per_s"] = rebuilds[1][1]["messages_per_second"]
            notes["peak_rss_mb"] = {k: round(v, 1) for k, v in rss.items()}
            rows.append(Row(name=name, value=rate, unit="msg/s", baseline_name="raw ordered read",
                            baseline_value=raw, notes=notes))
    rows += [
        Row(name=f"GET person-year p50 at {RATE:.0f}/s", value=pct(lat["years"], 0.5), unit="ms",
            baseline_name="bare p50", baseline_value=pct(lat["bare"], 0.5)),
        Row(name=f"GET person-year p99 at {RATE:.0f}/s", value=p99, unit="ms", baseline_name="bare p99",
            baseline_value=bare99, target="< 10 ms", met=p99 < 10, notes={"requests": len(lat["years"])}),
    ]
    return rows
