"""The `ledger` command line. Sub-commands import their modules lazily: `ledger replay` needs no server code."""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledger", description="claims-ledger: 大病保险 and 医疗救助 on an event ledger")
    sub = parser.add_subparsers(dest="command", required=True)

    replay = sub.add_parser("replay", help="decide a JSONL file of inbound messages offline, results on stdout")
    replay.add_argument("file", help="JSON Lines file of inbound messages ('-' for stdin)")
    replay.add_argument("--pack-dir", help="directory of policy pack *.toml files")

    sub.add_parser("run", help="run the ledger (embedded NATS and PostgreSQL unless NATS_URL/DATABASE_URL are set)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "replay":
        from services.cli.replay import run
        return run(args.file, args.pack_dir, sys.stdout.buffer)
    if args.command == "run":
        from services.cli.run import run_ledger
        return run_ledger()
    return 2


if __name__ == "__main__":
    sys.exit(main())
