"""`ledger project`, `ledger rebuild`, `ledger verify`: the read side from the command line."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import sys
import time

import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from services.cli.connect import connected

err = Console(stderr=True)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _project(names: list[str] | None, batch: int) -> int:
    from projections.db import migrated_pool
    from projections.runner import Projector
    from services.integrity.monitor import IntegrityMonitor
    async with connected() as side:
        pool = await migrated_pool(side.database_url, max_size=3)
        try:
            projector = Projector(side.database_url, pool, side.js, names, max_batch=batch, seal_key=side.seal_key)
            monitor = IntegrityMonitor(pool, side.js, side.seal_key, replicas=side.settings.stream_replicas)
            err.print(f"projecting {', '.join(projector.projections)} from {side.nats_url} (Ctrl-C stops)")
            stop = _stop_on_signals()
            await asyncio.gather(projector.run(stop), monitor.run(stop))     # loss detection beside it (ADR 0010)
        finally:
            await pool.close()
    return 0


def project(names: list[str] | None, batch: int) -> int:
    return run_async(_project(names or None, batch))


def progress_bar(unit: str = "msg/s") -> Progress:
    """A bar with a rate field (`rate=`) and an ETA, on stderr, drawn twice a second (rich's default of ten
    took 2% of a rebuild's CPU)."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn(f"{{task.fields[rate]:>9,.0f}} {unit}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=err, transient=False, refresh_per_second=2)


async def _rebuild(names: list[str] | None, as_json: bool, batch: int, workers: int) -> int:
    from projections.db import migrated_pool
    from projections.rebuild import rebuild
    if workers < 1:
        raise ValueError("--workers must be at least 1")
    async with connected() as side:
        pool = await migrated_pool(side.database_url, max_size=2)
        try:
            with progress_bar() as bar:
                task = bar.add_task(f"rebuild {', '.join(names or ['all'])}", total=None, rate=0.0)

                def progress(state) -> None:
                    bar.update(task, completed=state.seq, total=max(state.target, 1), rate=state.rate)

                state = await rebuild(side.database_url, pool, side.js, names, max_batch=batch, progress=progress,
                                      seal_key=side.seal_key, workers=workers,
                                      connect=functools.partial(connected, need_database=False))
                progress(state)
        finally:
            await pool.close()
    summary = {"projections": names or "all", "workers": workers, "seq": state.seq, "events": state.events,
               "messages_per_second": round(state.rate, 1), "seconds": round(state.elapsed, 2), "phases": state.phases}
    if as_json:
        sys.stdout.write(msgspec.json.encode(summary).decode() + "\n")
    else:
        err.print(f"swapped in at sequence {state.seq}: {state.events:,} events, {state.rate:,.0f} msg/s")
    return 0


def rebuild_cmd(name: str | None, as_json: bool, batch: int, workers: int = 1) -> int:
    return run_async(_rebuild([name] if name else None, as_json, batch, workers))


async def _verify(as_json: bool, psn_no: str | None = None) -> int:
    from projections.db import migrated_pool
    from projections.verify import verify_person, verify_stream, with_integrity
    from services.integrity.records import integrity_of
    async with connected() as side:
        if psn_no:
            report = await verify_person(side.js, side.person_key(psn_no), seal_key=side.seal_key)
        else:
            with progress_bar() as bar:
                task = bar.add_task("verify chains", total=None, rate=0.0)
                started = time.perf_counter()

                def progress(seq: int, last: int) -> None:
                    bar.update(task, completed=seq, total=last,
                               rate=seq / max(time.perf_counter() - started, 1e-6))

                report = await verify_stream(side.js, progress=progress, seal_key=side.seal_key)
        pool = await migrated_pool(side.database_url, max_size=2)
        try:
            found, accepted, restored = await integrity_of(pool, side.js, side.seal_key)
        finally:
            await pool.close()
        if psn_no:
            found = [f for f in found if f.whole_stream or f.person_key == side.person_key(psn_no)]
        report = with_integrity(report, found, accepted, restored)
    if as_json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        err.print(f"{report.messages:,} messages, {report.events:,} person events, {report.persons:,} persons "
                  f"checked up to sequence {report.last_seq} in {report.seconds}s")
        if report.ok:
            err.print("[green]every chain holds, every commit is sealed, the stream holds what the read models "
                      "remember[/green]")
        if report.missing:
            err.print(f"[red]{report.missing:,} sequences up to {report.last_seq} are gone from the stream[/red]")
        if report.breaks:
            table = Table("subject", "seq", "index", "event_id", "reason", title="chain breaks (first per person)")
            for b in report.breaks:
                table.add_row(b.subject, str(b.seq), str(b.index), b.event_id, b.reason)
            err.print(table)
        if report.findings:
            table = Table("finding", "person_key", "seq", "detail", title="the stream against the read models")
            for f in report.findings:
                table.add_row(f.code, f.person_key or "", "" if f.seq is None else str(f.seq), f.detail)
            err.print(table)
        for a in report.acceptances:
            err.print(f"loss accepted {a.accepted_at:%Y-%m-%d %H:%M} (#{a.id}): {a.reason}")
    return 0 if report.ok else 1


def verify_cmd(as_json: bool, psn_no: str | None = None) -> int:
    return run_async(_verify(as_json, psn_no))


def run_async(coro) -> int:
    try:
        return asyncio.run(coro)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        err.print(f"[red]ledger: {exc}[/red]")
        return 2
