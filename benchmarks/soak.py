"""Soak (issue 10 part 6): up to 1,000,000 settlements through one `ledger run`, its RSS sampled all along.

Why: the ledger used to run ``gc.freeze()`` every 0.25 s and never undo it, and
an object alive at a freeze that later became garbage inside a reference cycle
was never collected: a leak of that kind shows as RSS and a frozen generation
(``ledger_gc_frozen_objects``) that keep climbing under a steady load. This
run measured it (ADR 0014) and measures that RSS stays flat after warm-up now
that the collector is settled once at start-up (services/compose/ledger.py
`settle_gc`): the slope after warm-up (MB per 100,000 settlements), the peak,
the frozen generation over the same span, and the pause histograms
(benchmarks/tail.py: collections per generation, loop lag, appends).

What legitimately grows is kept bounded on purpose, or it would hide a leak:
the person cache (``LEDGER_PERSON_CACHE``) keeps each cached person's every
decision, so settlements go to a sliding window of ``WINDOW`` persons, each
getting ``PER_PERSON`` settlements and then none: a person's state stops
growing, and with a cache of ``CACHE`` persons (> ``WINDOW``) the cache is full
after ``CACHE × PER_PERSON`` settlements and only evicts after. `ledger run`
runs with ``LEDGER_PROJECTOR=off``: what is measured is the deciding process.

Warm-up is the first 100,000 settlements (a third of a ``--quick`` run). The
nats-server runs with the server's default sync interval (unsafe for the
ledger, labelled so; design §2 allows it for benchmarks): what is measured is
memory, and with ``sync_interval: always`` a million settlements take over an
hour here. Bounded: ``SOAK_SECONDS`` of feeding at most (default 1,200), then
the settlements so far are judged. ``SOAK_GC_YOUNG`` sets ``LEDGER_GC_YOUNG``.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nats

from benchmarks import tail
from benchmarks.report import Row
from events import samples as s
from services.runtime.embedded import start_nats

REPO = Path(__file__).resolve().parents[1]
WINDOW, PER_PERSON, CACHE = 500, 20, 1_500
CONCURRENCY = 64
RETRIES = 5               # tries of 30 s per message before the soak gives up
BUDGET = 1_200.0        # seconds of feeding at most (SOAK_SECONDS): bounded, whatever the machine
TOKEN = "soak-platform-token"


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def messages(settlements: int):
    """(msg_type, body) in order: the hospitals, then each window's persons set up and their settlements
    round-robin."""
    for code in s.HOSPITALS:
        yield "medins", s.dumps(s.medins(code))
    n = 0
    window = 0
    while n < settlements:
        first = window * WINDOW
        for i in range(first, first + WINDOW):
            psn = s.psn_no_of(i, "SOAK-")
            yield "psn_identity", s.dumps(s.identity(psn, ("dibao", "tekun", "at_risk")[i % 3]))
            yield "enrolment", s.dumps(s.enrolment(psn))
        for k in range(WINDOW * PER_PERSON):
            if n >= settlements:
                return
            psn = s.psn_no_of(first + k % WINDOW, "SOAK-")
            total = 2_000 + (n * 7919) % 58_000
            yield "settlement", s.dumps(s.settlement(f"SOAK-{n:08d}", psn, total=total, ooc=total // 20,
                                                     day=f"2022-{1 + k // WINDOW % 12:02d}-{1 + k % 28:02d}"))
            n += 1
        window += 1


async def _metrics(http: httpx.AsyncClient) -> str:
    with contextlib.suppress(Exception):
        return (await http.get("/metrics", timeout=5)).text
    return ""


def _frozen(text: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("ledger_gc_frozen_objects "):
            return float(line.split()[1])
    return None


async def soak(work: Path, settlements: int, env: dict[str, str], budget: float = float("inf")) -> dict:
    """Feed up to ``settlements`` through one `ledger run`, stopping early once ``budget`` seconds are spent."""
    server = await asyncio.to_thread(start_nats, work / "nats", 0, sync_always=False)
    port = _free_port()
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "NATS_", "DATABASE_"))}
    run_env.update(NATS_URL=server.url, LEDGER_NATS_ADMIN_URL=server.url_for("admin"), LEDGER_HTTP_PORT=str(port),
                   LEDGER_DATA_DIR=str(work / "data"), LEDGER_PERSON_CACHE=str(CACHE), LEDGER_TOKEN_PLATFORM=TOKEN,
                   LEDGER_PROJECTOR="off", LEDGER_LOG_LEVEL="warning", PYTHONUNBUFFERED="1", **env)
    with (work / "ledger.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli.main", "run"], cwd=REPO, env=run_env,
                                stdout=subprocess.PIPE, stderr=log, start_new_session=True)
    samples: list[tuple[float, int, int, float | None]] = []      # (seconds, settled, rss, frozen)
    at_warm: str | None = None                                     # /metrics when warm-up ended
    nc = None
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 180)   # type: ignore[union-attr]
        if not line.startswith(b"claims-ledger ready"):
            raise RuntimeError(f"ledger run did not start: {(work / 'ledger.log').read_text()[-2000:]}")
        nc = await nats.connect(server.url_for("platform"), pending_size=256 * 1024 * 1024)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            source = messages(settlements)
            settled = errors = retried = 0
            started, cpu0 = time.monotonic(), _cpu_seconds(proc.pid)

            for _ in s.HOSPITALS:                       # reference data first: barriers, one at a time
                msg_type, body = next(source)
                await nc.request(f"ledger.rpc.{msg_type}", body, timeout=30)

            async def feeder() -> None:
                nonlocal settled, errors, retried
                for msg_type, body in source:
                    if time.monotonic() - started > budget:
                        return
                    for attempt in range(RETRIES):        # as the platform would: the same message again
                        try:
                            reply = await nc.request(f"ledger.rpc.{msg_type}", body, timeout=30)
                            break
                        except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                            retried += 1
                    else:
                        raise RuntimeError(f"no answer to one message after {RETRIES} tries of 30 s")
                    if msg_type == "settlement":
                        # A retry of a message decided before: `duplicate`, with the stored figures.
                        if b'"result":"settled"' in reply.data or (attempt and b'"result":"duplicate"' in reply.data):
                            settled += 1
                        else:
                            errors += 1

            async def sampler() -> None:
                nonlocal at_warm
                while True:
                    text = await _metrics(http)
                    samples.append((round(time.monotonic() - started, 1), settled, _rss(proc.pid), _frozen(text)))
                    if at_warm is None and settled >= warm_up(settlements):
                        at_warm = text
                    if len(samples) % 60 == 0:           # how far it got, should it end early
                        print(f"soak: {settled:,} settled in {samples[-1][0]:.0f} s, RSS {samples[-1][2] / 2**20:.0f} MB, "
                              f"{retried} retried", file=sys.stderr, flush=True)
                    await asyncio.sleep(1.0)

            watch = asyncio.create_task(sampler())
            await asyncio.gather(*(feeder() for _ in range(CONCURRENCY)))
            watch.cancel()
            seconds, cpu = time.monotonic() - started, _cpu_seconds(proc.pid) - cpu0
            text = await _metrics(http)
            samples.append((round(seconds, 1), settled, _rss(proc.pid), _frozen(text)))
            pauses = tail.pauses(tail.histograms(at_warm or ""), tail.histograms(text))
    except BaseException:                         # the temporary directory goes: show why it ended here
        print(f"soak ended early; ledger run (exit {proc.poll()}) logged:\n"
              f"{(work / 'ledger.log').read_text(errors='replace')[-3000:]}", file=sys.stderr, flush=True)
        raise
    finally:
        if nc is not None:
            await nc.close()
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(60)
        if proc.poll() is None:
            proc.kill()
        await asyncio.to_thread(server.stop)
    return {"samples": samples, "settled": settled, "target": settlements, "errors": errors, "retried": retried,
            "seconds": seconds, "cpu": cpu, "pauses_after_warm_up": pauses}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y on x."""
    n = len(points)
    if n < 2:
        return 0.0
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def warm_up(settlements: int) -> int:
    """What is left out of the trend: the person cache is full after CACHE x PER_PERSON (30,000)
    settlements; 100,000 leaves it time to settle (a fifth of a quick run)."""
    return min(100_000, settlements // 3)


def summarise(result: dict) -> dict:
    warm = warm_up(result["target"])
    after = [(st, rss, fz) for _, st, rss, fz in result["samples"] if st >= warm]
    mb = 1024 * 1024
    frozen = [(st / 1e5, fz) for st, _, fz in after if fz is not None]
    return {
        "warm_up_settlements": warm,
        "slope_mb_per_100k": slope([(st / 1e5, rss / mb) for st, rss, _ in after]),
        "rss_at_warm_mb": after[0][1] / mb if after else 0.0,
        "rss_end_mb": after[-1][1] / mb if after else 0.0,
        "peak_mb": max(rss for _, _, rss, _ in result["samples"]) / mb,
        "frozen_slope_per_100k": slope(frozen) if frozen else None,
        "frozen_end": frozen[-1][1] if frozen else None,
        "per_second": result["settled"] / result["seconds"],
        "cpu_us_per_settlement": result["cpu"] / max(1, result["settled"]) * 1e6,
    }


async def run(args) -> list[Row]:
    settlements = 60_000 if args.quick else int(os.environ.get("SOAK_SETTLEMENTS") or 1_000_000)
    budget = float(os.environ.get("SOAK_SECONDS") or BUDGET)
    young = os.environ.get("SOAK_GC_YOUNG")
    env = {"LEDGER_GC_YOUNG": young} if young else {}
    with tempfile.TemporaryDirectory(prefix="soak-", dir="/tmp") as tmp:
        result = await soak(Path(tmp), settlements, env, budget)
    summary = summarise(result)
    label = f"soak {result['settled']:,} (gc young {young or 'default'})"
    notes = {**summary, "settled": result["settled"], "errors": result["errors"],
             "pauses_after_warm_up": result["pauses_after_warm_up"],
             "sync": "server default (unsafe for the ledger; memory is what is measured)",
             "samples": [list(x) for x in result["samples"][::max(1, len(result["samples"]) // 200)]]}
    return [
        Row(f"{label}: RSS slope after warm-up", round(summary["slope_mb_per_100k"], 2), "MB/100k settlements",
            target="< 2 MB per 100k (flat)", met=abs(summary["slope_mb_per_100k"]) < 2.0, notes=notes),
        Row(f"{label}: peak RSS", round(summary["peak_mb"], 1), "MB"),
        Row(f"{label}: settlements", round(summary["per_second"], 1), "settlements/s",
            notes={"cpu_us_per_settlement": round(summary["cpu_us_per_settlement"], 1)}),
    ]


def main() -> None:
    """`make soak`: this soak alone, its table, and benchmarks/results/soak.json."""
    import argparse

    from benchmarks.report import print_table, write_json

    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60,000 settlements")
    rows = asyncio.run(run(parser.parse_args()))
    print_table(rows)
    print(f"results written to {write_json(rows, 'soak')}")


if __name__ == "__main__":
    main()
