"""`ledger audit`: replay a person, an area or a period as of a time and show what the rules give now.

Exit 0: no difference; 1: differences found (listed); 2: bad arguments or no connection.
"""
from __future__ import annotations

import datetime as dt
import sys
import time

import msgspec
from rich.console import Console
from rich.table import Table

from services.cli.connect import connected
from services.cli.readside import progress_bar, run_async

err = Console(stderr=True)


def parse_sets(values: list[str]) -> dict[str, dict[str, str]]:
    """`PACK:PATH=VALUE` → {pack: {path: value}}."""
    out: dict[str, dict[str, str]] = {}
    for item in values:
        head, eq, value = item.partition("=")
        pack, colon, path = head.partition(":")
        if not (eq and colon and pack and path):
            raise ValueError(f"--set {item!r}: expected PACK:PATH=VALUE, e.g. linfen-2022:critical_illness.ratio=0.65")
        out.setdefault(pack, {})[path] = value
    return out


def request_of(args) -> object:
    from services.audit.job import AuditRequest
    as_of = dt.datetime.fromisoformat(args.as_of) if args.as_of else None
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=dt.timezone.utc)
    return AuditRequest(psn_no=args.psn_no, area=args.area,
                        date_from=dt.date.fromisoformat(args.date_from) if args.date_from else None,
                        date_to=dt.date.fromisoformat(args.date_to) if args.date_to else None,
                        as_of=as_of, pack_dir=args.pack_dir, what_if_dir=args.what_if_dir,
                        overrides=parse_sets(args.set or []))


async def _audit(req, as_json: bool) -> int:
    from projections.db import create_pool
    from services.audit.job import persons_in_scope, run_audit
    async with connected(need_database=req.psn_no is None) as side:
        pool = await create_pool(side.database_url) if side.database_url and req.psn_no is None else None
        try:
            keys = await persons_in_scope(pool, side.person_key, req)
        finally:
            if pool is not None:
                await pool.close()
        with progress_bar("persons/s") as bar:
            task = bar.add_task("audit replay", total=len(keys) or 1, rate=0.0)
            started = time.perf_counter()
            outcome = await run_audit(side.js, keys, req, progress=lambda d, t: bar.update(
                task, completed=d, rate=d / max(time.perf_counter() - started, 1e-6)))
    if as_json:
        sys.stdout.write(msgspec.json.encode(outcome).decode() + "\n")
    else:
        _print(outcome)
    return 1 if outcome.differences else 0


def _print(outcome) -> None:
    t = outcome.totals
    err.print(f"{t['persons']} persons, {t['commits']} decisions replayed, {t['compared']} compared, "
              f"{t['differences']} differences{' (what if)' if t['what_if'] else ''}")
    funds = Table("fund", "paid", "recomputed", "delta", title="totals in scope")
    for fund in sorted(t["paid"]):
        funds.add_row(fund, str(t["paid"][fund]), str(t["recomputed"][fund]), str(t["delta"][fund]))
    err.print(funds)
    if outcome.differences:
        table = Table("seq", "kind", "key", "fund/field", "rule_id", "clause", "paid", "recomputed", "delta",
                      title="differences")
        for d in outcome.differences:
            table.add_row(str(d.seq), d.kind, d.key, d.fund or d.field or "", d.rule_id or "", d.clause or d.note or "",
                          _s(d.paid), _s(d.recomputed), _s(d.delta))
        err.print(table)


def _s(value) -> str:
    return "" if value is None else str(value)


def audit_cmd(args) -> int:
    try:
        req = request_of(args)
        problems = req.problems()
        if problems:
            raise ValueError("; ".join(problems))
        req.library()
    except (ValueError, OSError) as exc:
        err.print(f"[red]ledger audit: {exc}[/red]")
        return 2
    return run_async(_audit(req, args.json))

