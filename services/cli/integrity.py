"""`ledger restore` and `ledger accept-loss`: what an operator does once the stream lost something (ADR 0010)."""
from __future__ import annotations

import sys

import msgspec
from rich.table import Table

from services.cli.connect import admin_url, connected
from services.nats.connect import connect_command
from services.cli.readside import err, progress_bar, run_async


async def _with_pool(act):
    """`act(side, pool)` beside the running ledger, with a pool on its migrated read models."""
    from projections.db import migrated_pool
    async with connected() as side:
        pool = await migrated_pool(side.database_url, max_size=3)
        try:
            return await act(side, pool)
        finally:
            await pool.close()


def _json(report: object) -> None:
    sys.stdout.write(msgspec.json.encode(report).decode() + "\n")


def _findings(findings: list, title: str) -> None:
    table = Table("finding", "person_key", "seq", "detail", title=title)
    for f in findings:
        table.add_row(f.code, f.person_key or "", "" if f.seq is None else str(f.seq), f.detail)
    err.print(table)


async def _restore(yes: bool, as_json: bool) -> int:
    from services.integrity.monitor import IntegrityMonitor
    from services.integrity.restore import RestoreFailed, restore

    async def act(side, pool):
        if not yes:
            return await IntegrityMonitor(pool, side.js, side.seal_key).check_all()
        url = admin_url(side.settings)
        if url is None:
            raise RestoreFailed("recreating stream LEDGER needs a NATS admin: set LEDGER_NATS_ADMIN_URL")
        admin = await connect_command(url)
        try:
            with progress_bar() as bar:
                task = bar.add_task("restore LEDGER", total=None, rate=0.0)
                return await restore(pool, side.js, side.seal_key, admin_js=admin.jetstream(),
                                     replicas=side.settings.stream_replicas,
                                     progress=lambda seq, total: bar.update(task, completed=seq, total=total))
        finally:
            await admin.close()

    try:
        report = await _with_pool(act)
    except RestoreFailed as failed:
        err.print(f"[red]restore stopped: {failed}[/red]")
        return 1
    if not yes:
        if not report:
            err.print("[green]nothing to restore: the stream holds what the read models remember[/green]")
            return 0
        _findings(report, "the stream against the read models")
        err.print("`ledger restore --yes` deletes stream LEDGER and publishes it again from the read "
                  "models' copy; every adjudicator is held meanwhile.")
        return 1
    if as_json:
        _json(report)
    elif not report.done:
        err.print("[green]nothing to restore[/green]")
    else:
        err.print(f"restored sequences 1-{report.restored_upto}: {report.from_read_models:,} from the read models, "
                  f"{report.from_old_stream:,} from the old stream, {report.not_restored:,} left as markers "
                  f"(stream created {report.stream_created}, {report.seconds}s)")
        if report.unrestored:
            err.print(f"[red]{report.unrestored}: `ledger accept-loss --reason …` once you have looked[/red]")
        if report.after:
            _findings(report.after, "still found")
    return 0 if report.done and not report.after else 1


def restore_cmd(yes: bool, as_json: bool) -> int:
    return run_async(_restore(yes, as_json))


async def _accept(reason: str, as_json: bool) -> int:
    from services.integrity.accept import AcceptRefused, accept_loss
    try:
        report = await _with_pool(lambda side, pool: accept_loss(pool, side.js, side.seal_key, reason,
                                                                 replicas=side.settings.stream_replicas))
    except AcceptRefused as refused:
        err.print(f"[red]nothing accepted: {refused}[/red]")
        return 1
    if as_json:
        _json(report)
    elif report.acceptance_id is None:
        err.print("[green]no loss to accept: the stream holds what the read models remember[/green]")
    else:
        _findings(report.findings, f"accepted as acceptance #{report.acceptance_id}")
        err.print(f"kept {report.lost_events:,} audit-trail rows in integrity_lost_event; the read models are "
                  f"projected again from the stream (event at sequence {report.event_seq})")
    return 0


def accept_cmd(reason: str, as_json: bool) -> int:
    return run_async(_accept(reason, as_json))
