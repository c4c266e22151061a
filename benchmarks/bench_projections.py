"""Read side: a full rebuild beside a raw ordered read of the same stream, and person-year reads.

1. A stream of ~1,000,000 events (`--quick`: 50,000): sample traffic decided once by the engine
   (2,000 persons), then cloned with renamed persons onto their own subjects, published on an
   embedded nats-server with the default sync interval (publishing is not what is measured).
2. Baseline, same run: an ordered push consumer reading the whole stream and doing nothing
   (msg/s); the projector's own bounded pull reader doing nothing is in the notes. Ceiling,
   same run: decoding and folding the first 100,000 messages alone, already in memory.
3. `ledger rebuild --json` in a subprocess (all three projections, one pass, fresh tables,
   swap): its messages/s from its own clock, and its own peak RSS (wait4).
   Targets: >= 50% of the raw rate; peak RSS < 500 MB.
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

from benchmarks.readside_app import TOKEN
from benchmarks.report import Row
import msgspec

from events.chain import encode_sealed, seal_stored
from events.ledger import COMMIT_DECODER, COMMIT_ENCODER
from projections.sample import decided, subject_of, traffic
from projections.catalog import select
from projections.runner import decode_batch
from projections.source import StreamReader, last_sequence
from services.runtime.embedded import start_nats, start_postgres
from services.runtime.secrets import person_key
from services.nats.streams import ensure_ledger_stream

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-projections-person-key-secret-01"
SEAL_SECRET = "bench-projections-seal-secret-0001"
BASE_PERSONS = 2000
RATE = 500.0
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
    """The rebuild's CPU work that no reader or database can remove: decode each commit and run every
    projection's fold, on messages already in memory (msg/s). A ceiling for the rebuild's rate."""
    projections = select(None)
    states = {p.name: p.new_state() for p in projections}
    started = time.perf_counter()
    for raws in batches:
        msgs = decode_batch(raws, SEAL_SECRET.encode())
        for p in projections:
            for m in msgs:
                p.fold(states[p.name], m)
    return sum(map(len, batches)) / (time.perf_counter() - started)


def _rebuild(env: dict[str, str]) -> tuple[dict, float]:
    """Run `ledger rebuild --json`; its summary and its own peak RSS in MB (wait4 on that one child:
    RUSAGE_CHILDREN would report the largest child ever waited for, e.g. another benchmark's worker)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli.main", "rebuild", "--json"], env=env,
                                cwd=REPO, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise RuntimeError(f"ledger rebuild failed ({proc.returncode}): {err.read().decode()[-3000:]}")
        return msgspec.json.decode(out.read()), usage.ru_maxrss / 1024


class _Http:
    """Keep-alive HTTP/1.1 on raw asyncio streams: httpx costs ~1 ms of client CPU per request, which at
    500 requests/s on a shared 2-core machine would be measuring the client, not the server."""

    def __init__(self, port: int, connections: int = 32):
        self.port, self.size = port, connections
        self.free: asyncio.Queue = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            self.free.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))

    async def get(self, path: str) -> int:
        reader, writer = await self.free.get()
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            return int(head[9:12])
        finally:
            self.free.put_nowait((reader, writer))

    async def close(self) -> None:
        while not self.free.empty():
            _, writer = self.free.get_nowait()
            writer.close()


async def _latency(client: _Http, paths: list[str], seconds: float) -> list[float]:
    """Open loop at RATE: each request is timed from when it was due, whatever the answers before it did."""
    latencies: list[float] = []
    failures = 0

    async def one(path: str, due: float) -> None:
        nonlocal failures
        failures += await client.get(path) != 200
        latencies.append(time.perf_counter() - due)

    tasks = []
    start = time.perf_counter()
    for i in range(int(RATE * seconds)):
        due = start + i / RATE
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(paths[i % len(paths)], due)))
    await asyncio.gather(*tasks)
    if failures:
        raise RuntimeError(f"{failures} requests failed")
    return sorted(latencies)


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p * len(values)))] * 1000


async def _reads(env: dict[str, str], persons: list[str], seconds: float) -> dict[str, list[float]]:
    port = 18700 + os.getpid() % 500
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "benchmarks.readside_app:app",
                               "--port", str(port), "--log-level", "warning", "--no-access-log"],
                              env=env, cwd=REPO)
    client = _Http(port)
    try:
        for _ in range(300):
            try:
                await client.open()
                if await client.get("/bare") == 200:
                    break
            except OSError:
                await asyncio.sleep(0.1)
        year_paths = [f"/v1/persons/{p}/years/2022" for p in persons]
        await _latency(client, year_paths, 2.0)                                # warm connections and caches
        return {"bare": await _latency(client, ["/bare"], seconds),
                "years": await _latency(client, year_paths, seconds)}
    finally:
        await client.close()
        server.terminate()
        server.wait(10)


async def run(args: Any) -> list[Row]:
    wanted = 50_000 if args.quick else 1_000_000
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
            raw = await _raw_read(js, last)
            pull, kept = await _pull_read(js, last, keep=100_000)
            alone = _fold_alone(kept)
            del kept
            await nc.close()
            env = {**os.environ, "NATS_URL": nats_server.url, "DATABASE_URL": pg.url,
                   "LEDGER_PERSON_KEY_SECRET": SECRET, "LEDGER_SEAL_SECRET": SEAL_SECRET, "PYTHONPATH": str(REPO)}
            t0 = time.perf_counter()
            summary, rss = _rebuild(env)
            wall = time.perf_counter() - t0
            print(f"  rebuilt in {wall:.1f}s: {summary}", flush=True)
            conn = await asyncpg.connect(pg.url)       # let the write burst settle before timing reads
            for statement in ("VACUUM ANALYZE person_year", "VACUUM ANALYZE person_year_rule", "CHECKPOINT"):
                await conn.execute(statement)
            await conn.close()
            lat = await _reads(env, random.Random(1).sample(persons, min(len(persons), 1000)),
                               3.0 if args.quick else 10.0)
        finally:
            pg.stop()
            nats_server.stop()
    rate = summary["messages_per_second"]
    p99, bare99 = _pct(lat["years"], 0.99), _pct(lat["bare"], 0.99)
    notes = {"messages": messages, "events": events, "projector_reader_msg_per_s": round(pull, 1), "rebuild_wall_s": round(wall, 1),
             "rebuild_events_per_s": round(summary["events"] / (summary["seq"] / rate), 1) if rate else None}
    return [
        Row(name="decode + fold alone, in memory (ceiling of a rebuild)", value=alone, unit="msg/s",
            baseline_name="raw ordered read", baseline_value=raw,
            notes={"why": "no reader, no database: if this is under 0.5x raw, so is any rebuild with these folds"}),
        Row(name=f"rebuild all projections ({events:,} events)", value=rate, unit="msg/s",
            baseline_name="raw ordered read", baseline_value=raw, target=">= 0.5x raw", met=rate >= 0.5 * raw,
            notes=notes),
        Row(name="rebuild peak RSS (own process)", value=rss, unit="MB", target="< 500 MB", met=rss < 500),
        Row(name=f"GET person-year p50 at {RATE:.0f}/s", value=_pct(lat["years"], 0.5), unit="ms",
            baseline_name="bare p50", baseline_value=_pct(lat["bare"], 0.5)),
        Row(name=f"GET person-year p99 at {RATE:.0f}/s", value=p99, unit="ms", baseline_name="bare p99",
            baseline_value=bare99, target="< 10 ms", met=p99 < 10, notes={"requests": len(lat["years"])}),
    ]
