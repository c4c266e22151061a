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
    sub.add_parser("setup-streams", help="create or update streams LEDGER and PLATFORM_IN (LEDGER_NATS_ADMIN_URL)")

    project = sub.add_parser("project", help="run the projector alone: stream LEDGER -> PostgreSQL read models")
    project.add_argument("--projection", action="append", help="only this projection (repeatable); default all")
    project.add_argument("--batch", type=int, default=2000, help="messages per transaction")
    rebuild = sub.add_parser("rebuild", help="rebuild read models from sequence 1 into fresh tables, then swap")
    rebuild.add_argument("projection", nargs="?", help="claims, audit_trail or dead_letters; default all")
    rebuild.add_argument("--batch", type=int, default=2000,
                         help="messages per transaction; memory grows with it (four batches in flight, ~10 kB a message)")
    rebuild.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    rebuild.add_argument("--workers", type=int, default=1,
                         help="processes folding the load, persons split by key hash, events by sequence range")
    verify = sub.add_parser("verify", help="recompute every person's hash chain from the stream (exit 1 on a break)")
    verify.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    verify.add_argument("--psn-no", help="only this person's chain (reads their subject alone)")
    verify.add_argument("--digest", metavar="FILE", help="prove the stream still holds the history of this "
                                                         "signed digest (`ledger digest`); names what differs")
    verify.add_argument("--public-key", metavar="FILE", help="with --digest: the public key you kept "
                                                             "(default: the data directory's)")
    digest = sub.add_parser("digest", help="the stream's signed digest up to a sequence, for a supervisor to keep")
    digest.add_argument("--upto", type=int, metavar="SEQ", help="last stream sequence covered (default: the last)")
    digest.add_argument("--out", metavar="FILE", help="write the digest here instead of stdout")
    digest.add_argument("--key", action="store_true", help="print the public key that verifies digests instead")
    restore = sub.add_parser("restore", help="put stream LEDGER back from the read models' copy after a loss")
    restore.add_argument("--yes", action="store_true", help="do it (without: show what was found and stop)")
    restore.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout")
    accept = sub.add_parser("accept-loss", help="accept, on the record, what the stream lost; re-project from it")
    accept.add_argument("--reason", required=True, help="why the loss is accepted (kept with the acceptance)")
    accept.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout")
    audit = sub.add_parser("audit", help="replay decisions as of a time and list differences with the rules")
    audit.add_argument("--psn-no", help="one person")
    audit.add_argument("--area", help="admdvs prefix, e.g. 1410")
    audit.add_argument("--from", dest="date_from", help="first service date, YYYY-MM-DD")
    audit.add_argument("--to", dest="date_to", help="last service date, YYYY-MM-DD")
    audit.add_argument("--as-of", help="replay events recorded up to this ISO time")
    audit.add_argument("--pack-dir", help="archived pack versions, beside the shipped packs")
    audit.add_argument("--what-if-dir", help="recompute with these packs instead (matched by pack id)")
    audit.add_argument("--set", action="append", metavar="PACK:PATH=VALUE", help="what-if parameter override")
    audit.add_argument("--json", action="store_true", help="print totals and differences as JSON on stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from services.observability import configure_logging
    configure_logging()          # log lines (alarms included) on stderr: stdout is for results and --json
    if args.command == "replay":
        from services.cli.replay import run
        return run(args.file, args.pack_dir, sys.stdout.buffer)
    if args.command == "run":
        from services.cli.run import run_ledger
        return run_ledger()
    if args.command == "setup-streams":
        from services.cli.setup_streams import setup_streams_cmd
        return setup_streams_cmd()
    if args.command == "project":
        from services.cli.readside import project
        return project(args.projection, args.batch)
    if args.command == "rebuild":
        from services.cli.readside import rebuild_cmd
        return rebuild_cmd(args.projection, args.json, args.batch, args.workers)
    if args.command == "verify" and args.digest:
        from services.cli.digest import verify_digest_cmd
        return verify_digest_cmd(args.digest, args.public_key, args.json)
    if args.command == "digest":
        from services.cli.digest import digest_cmd
        return digest_cmd(args.upto, args.out, args.key)
    if args.command == "verify":
        from services.cli.readside import verify_cmd
        return verify_cmd(args.json, args.psn_no)
    if args.command == "restore":
        from services.cli.integrity import restore_cmd
        return restore_cmd(args.yes, args.json)
    if args.command == "accept-loss":
        from services.cli.integrity import accept_cmd
        return accept_cmd(args.reason, args.json)
    if args.command == "audit":
        from services.cli.audit import audit_cmd
        return audit_cmd(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
