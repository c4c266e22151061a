"""`make chaos` (python -m benchmarks.chaos): every fault of issue 10 on real processes, then the end checks.

The settlements and persons are split evenly over the scenarios run (each on
a stack of its own, in a temporary directory under /tmp, every server on
127.0.0.1). Exit 0 when every check of every scenario passed. A failed
scenario's directory is kept (logs, stores) and named; the others are removed.
Ctrl-C or SIGTERM stops every process started and still writes the report.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.chaos.report import RESULTS, print_report, write_json
from benchmarks.chaos.scenarios import SCENARIOS, Scenario, ScenarioResult, run_scenario


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=1, help="draws the fault moments, targets and the workload")
    p.add_argument("--settlements", type=int, default=100_000, help="in all, split over the scenarios")
    p.add_argument("--persons", type=int, default=20_000, help="in all, split over the scenarios")
    p.add_argument("--only", action="append", default=[], help="scenarios whose name contains this")
    p.add_argument("--quick", action="store_true", help="a smoke run: 4,000 settlements over 800 persons")
    p.add_argument("--json", type=Path, default=RESULTS)
    p.add_argument("--keep", action="store_true", help="keep every scenario's directory")
    p.add_argument("--parallel", type=int, default=2, help="scenarios run at once (each on its own stack)")
    return p


def _longest_first(chosen: list[Scenario]) -> list[Scenario]:
    """The longest scenarios start first, so that the last to start are short ones and the two slots
    end close together (fewest seconds with a slot idle at the end)."""
    return sorted(chosen, key=lambda s: -s.seconds)


async def _main(args: argparse.Namespace, results: list[ScenarioResult]) -> None:
    chosen = [s for s in SCENARIOS if not args.only or any(o.lower() in s.name.lower() for o in args.only)]
    if not chosen:
        raise SystemExit(f"no scenario matches {args.only}; there are: {[s.name for s in SCENARIOS]}")
    settlements, persons = (4_000, 800) if args.quick else (args.settlements, args.persons)
    each_settlements, each_persons = -(-settlements // len(chosen)), -(-persons // len(chosen))
    root = Path(tempfile.mkdtemp(prefix="chaos-", dir="/tmp"))
    gate = asyncio.Semaphore(args.parallel)

    async def one(scenario: Scenario) -> None:
        i = SCENARIOS.index(scenario)
        async with gate:
            print(f"[{i + 1}] {scenario.name} ({scenario.mode}): starting", flush=True)
            work = root / f"s{i + 1}"
            result = await run_scenario(scenario, work, results, persons=each_persons,
                                        settlements=each_settlements, seed=args.seed, prefix=chr(ord("A") + i),
                                        log=lambda line: print(f"[{i + 1}] {line}", flush=True))
        verdict = "passed" if result.ok else f"FAILED (kept {work})"
        print(f"[{i + 1}] {scenario.name}: {verdict} in {result.total_seconds:.0f} s", flush=True)
        if result.ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    try:
        await asyncio.gather(*(one(s) for s in _longest_first(chosen)))
    finally:
        results.sort(key=lambda r: [s.name for s in SCENARIOS].index(r.name))
        if not args.keep and not any(root.iterdir()):
            root.rmdir()


def main() -> int:
    args = _parser().parse_args()
    # SIGTERM as Ctrl-C: asyncio.run cancels the scenario, whose stack stops every process it started.
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    began = time.monotonic()
    results: list[ScenarioResult] = []
    interrupted = False
    try:
        asyncio.run(_main(args, results))
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: every process started was stopped", file=sys.stderr)
    wall = time.monotonic() - began
    print_report(results, args.seed, wall)
    print(f"results written to {write_json(results, args.seed, wall, args.json)}")
    if interrupted:
        return 130
    return 0 if results and all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
