"""`make bench`: run every benchmarks/bench_*.py, print one table, write benchmarks/results/latest.json.

Each module exposes `async def run(args) -> list[Row]`. `--only NAME` picks modules;
`--quick` shrinks sizes for a smoke run.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import pkgutil

import benchmarks
from benchmarks.report import print_table, write_json


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--only", action="append", default=[], help="module name, e.g. bench_replay")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--events", type=int, help="events in bench_projections' stream (a size between --quick's "
                                                   "50,000 and the default 1,000,000, for a loaded machine)")
    args = parser.parse_args()
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    rows = []
    for name in names:
        if args.only and name not in args.only:
            continue
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"running {name} ...", flush=True)
        rows.extend(asyncio.run(module.run(args)))
    print_table(rows)
    print(f"results written to {write_json(rows)}")


if __name__ == "__main__":
    main()
