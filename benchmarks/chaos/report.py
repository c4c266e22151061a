"""`make chaos`'s output: rich tables on the terminal, everything in benchmarks/results/chaos.json."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.chaos.scenarios import ScenarioResult

RESULTS = Path(__file__).resolve().parents[1] / "results" / "chaos.json"


def print_report(results: list[ScenarioResult], seed: int, wall: float, console: Console | None = None) -> None:
    console = console or Console(width=None if sys.stdout.isatty() else 180)
    loadavg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    checks = Table(title=f"make chaos — seed {seed}, {wall:.0f} s; load average now {loadavg}, "
                         f"{os.cpu_count()} CPUs")
    for column in ("scenario", "check", "", "counts"):
        checks.add_column(column, overflow="fold")
    for r in results:
        if r.error:
            checks.add_row(r.name, "scenario ran to its end", "[red]FAIL[/red]", r.error[:400])
        for c in r.checks:
            detail = c.detail + (f"\n  e.g. {'; '.join(c.examples[:3])}" if c.examples and not c.ok else "")
            style = {"pass": "green", "lost": "yellow", "FAIL": "red"}[c.verdict]
            checks.add_row(r.name, c.name, f"[{style}]{c.verdict}[/{style}]", detail)
        checks.add_section()
    console.print(checks)

    faults = Table(title="faults injected")
    for column in ("scenario", "fault", "target", "at s", "answered", "back in s", "notes"):
        faults.add_column(column, overflow="fold")
    for r in results:
        for f in r.faults:
            faults.add_row(r.name, f.name, f.target, f"{f.at:.1f}", f"{f.progress:,}",
                           f"{f.recovery_seconds:.1f}" if f.recovered else "[red]not back[/red]",
                           "; ".join(f.notes)[:600])
    console.print(faults)

    load = Table(title="load", caption="check s: stream read + projectors catch up + rebuild and compare + verify")
    for column in ("scenario", "persons", "settlements", "messages", "start s", "set-up s", "feed s", "per s",
                   "check s", "total s", "retries"):
        load.add_column(column, overflow="fold")
    for r in results:
        checked = " + ".join(f"{v:.0f}" for v in r.check_seconds.values())
        load.add_row(r.name, f"{r.persons:,}", f"{r.settlements:,}", f"{r.messages:,}", f"{r.start_seconds:.0f}",
                     f"{r.setup_seconds:.0f}", f"{r.feed_seconds:.0f}", f"{r.rate:,.0f}", checked,
                     f"{r.total_seconds:.0f}",
                     ", ".join(f"{k} {v:,}" for k, v in r.retries.items())[:300])
    load.add_row("all", f"{sum(r.persons for r in results):,}", f"{sum(r.settlements for r in results):,}",
                 f"{sum(r.messages for r in results):,}", "", "", "", "", "", f"{wall:.0f}", "")
    console.print(load)
    passed = bool(results) and all(r.ok for r in results)
    console.print("[green]every check passed[/green]" if passed else "[red]some checks failed[/red]")


def write_json(results: list[ScenarioResult], seed: int, wall: float, path: Path = RESULTS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"seed": seed, "wall_seconds": round(wall, 1), "passed": bool(results) and all(r.ok for r in results),
           "settlements": sum(r.settlements for r in results), "persons": sum(r.persons for r in results),
           "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": platform.platform(),
           "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),   # the machine may be shared
           "scenarios": [{**asdict(r), "ok": r.ok, "rate": round(r.rate, 1)} for r in results]}
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return path
