"""`ledger digest` and `ledger verify --digest FILE`: signed digests from the command line (ADR 0011).

`ledger digest` signs with the key in the data directory, so it runs where the
ledger runs; `ledger verify --digest` needs only NATS and the public key (the
data directory's, or the one a supervisor kept: `--public-key FILE`).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import msgspec
from rich.table import Table

from services.cli.connect import connected
from services.cli.readside import err, progress_bar, run_async


def _bar_progress(bar, label: str):
    task = bar.add_task(label, total=None, rate=0.0)
    started = time.perf_counter()

    def progress(seq: int, last: int) -> None:
        bar.update(task, completed=seq, total=last, rate=seq / max(time.perf_counter() - started, 1e-6))
    return progress


async def _digest(upto: int | None, out: str | None) -> int:
    from services.audit.digest import ChainBroken, issue
    from services.runtime.signing import signing_key
    async with connected(need_database=False) as side:
        key = signing_key(side.settings)
        try:
            with progress_bar() as bar:
                digest = await issue(side.js, key, upto, seal_key=side.seal_key, progress=_bar_progress(bar, "digest"))
        except ChainBroken as exc:
            err.print(f"[red]no digest: {exc}[/red]")
            return 1
    body = msgspec.json.format(msgspec.json.encode(digest), indent=2) + b"\n"
    if out:
        Path(out).write_bytes(body)
        err.print(f"digest of {digest.stream} up to sequence {digest.upto} ({digest.subjects:,} subjects) "
                  f"written to {out}: {digest.digest} (key {digest.key_id})")
    else:
        sys.stdout.buffer.write(body)
    return 0


def key_cmd() -> int:
    from services.runtime.settings import load_settings
    from services.runtime.signing import signing_key
    view = signing_key(load_settings()).view()
    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(view), indent=2) + b"\n")
    return 0


def digest_cmd(upto: int | None, out: str | None, key: bool) -> int:
    if key:
        return key_cmd()
    return run_async(_digest(upto, out))


async def _verify_digest(path: str, public_key: str | None, as_json: bool) -> int:
    from services.audit.digest import DECODER, check
    from services.runtime.signing import read_public_key, signing_key
    try:
        digest = DECODER.decode(Path(path).read_bytes())
    except (OSError, msgspec.DecodeError) as exc:
        err.print(f"[red]ledger: {path} is not a digest file ({exc})[/red]")
        return 2
    async with connected(need_database=False) as side:
        public = read_public_key(Path(public_key)) if public_key else signing_key(side.settings).public
        with progress_bar() as bar:
            report = await check(side.js, digest, public, seal_key=side.seal_key,
                                 progress=_bar_progress(bar, "verify digest"))
    if as_json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        err.print(f"digest of {report.stream} up to sequence {report.upto}, {report.subjects:,} subjects, "
                  f"checked in {report.seconds}s" + (" (the stream was created again since)" if report.recreated
                                                     else ""))
        if report.ok:
            err.print("[green]the stream still holds exactly this history[/green]")
        else:
            for problem in report.problems:
                err.print(f"[red]{problem}[/red]")
            if report.differences:
                table = Table("person_key / subject", "kind", "digest seq", "found seq", "detail",
                              title="subjects whose history differs")
                for d in report.differences[:50]:
                    table.add_row(d.person_key or d.subject, d.kind, str(d.digest_seq or ""), str(d.found_seq or ""),
                                  d.detail)
                err.print(table)
    return 0 if report.ok else 1


def verify_digest_cmd(path: str, public_key: str | None, as_json: bool) -> int:
    return run_async(_verify_digest(path, public_key, as_json))
