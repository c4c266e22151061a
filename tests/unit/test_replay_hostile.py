"""`ledger replay` (integration.md §3–§4): one result per non-empty line whatever the line holds, exit 0 once the
file was read. A line nested a few thousand deep used to raise RecursionError, exit 1 and lose every later line."""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

from builders import enrolment, medins, raw
from events import codes
from events import ledger as ev
from events.limits import MAX_MESSAGE_BYTES, unreadable
from harness import packs
from services.cli.replay import replay_handler, replay_lines, run

REPO = Path(__file__).resolve().parents[2]
BIG = b'{"msg_type":"medins","x":"' + b"A" * 20_000_000 + b'"}'
HOSTILE = [b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000, b"\xff\xfe", b"\xef\xbb\xbf{}",
           b'{"msg_type":"medins","fixmedins_code":"\\ud800"}', b"1e999999", b"NaN", b"[]", BIG,
           b" " * 100_000 + b"\t"]                                                   # the last one is empty


def printed(out: bytes) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_every_hostile_line_gets_its_rejected_line_and_later_lines_are_decided(tmp_path):
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\r\n".join([raw(medins()), *HOSTILE, raw(enrolment("P1"))]) + b"\n")
    out = io.BytesIO()
    assert run(str(path), None, out) == 0
    results = printed(out.getvalue())
    assert [r["result"] for r in results] == ["recorded"] + ["rejected"] * (len(HOSTILE) - 1) + ["settled"]
    assert all(r["reason"]["code"] == codes.INVALID_MESSAGE for r in results[1:-1])
    assert results[-2]["reason"]["message"] == unreadable(BIG)            # read in pieces, said as of the whole
    assert hashlib.sha256(BIG).hexdigest() in results[-2]["reason"]["message"]


def test_the_cli_reads_a_huge_line_in_bounded_memory_and_exits_0(tmp_path):
    path = tmp_path / "big.jsonl"
    with path.open("wb") as f:
        f.write(BIG + b"\n")
        f.write(BIG[:-2] + b"B" * 60_000_000 + b'"}\n')                                 # an 80 MB line
        f.write(raw(medins()) + b"\n")
    # VmHWM: this process's peak resident memory (ru_maxrss would count the forking pytest's too)
    peak = ("import io, re, sys; from services.cli.replay import run; out = io.BytesIO(); "
            "rc = run(sys.argv[1], None, out); sys.stdout.buffer.write(out.getvalue()); "
            "print(re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read())[1], file=sys.stderr); "
            "sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", peak, str(path)], cwd=REPO, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    results = printed(done.stdout)
    assert [r["result"] for r in results] == ["rejected", "rejected", "recorded"]
    assert f"{len(BIG) + 60_000_000} bytes" in results[1]["reason"]["message"]
    assert int(done.stderr.split()[-1]) < 60_000, "KiB: the 80 MB line was held in memory"
    cli = subprocess.run([sys.executable, "-m", "services.cli.main", "replay", str(path)], cwd=REPO,
                         capture_output=True, timeout=60)
    assert cli.returncode == 0 and printed(cli.stdout) == results


def test_a_line_that_crashes_the_adjudicator_is_a_poison_message_and_replay_goes_on():
    handler = replay_handler(packs())
    decide = handler.engine.decide

    def crashing(message, *args, **kwargs):
        if getattr(message, "psn_no", None) == "CRASH-ME":
            raise RuntimeError("bug while deciding CRASH-ME")
        return decide(message, *args, **kwargs)

    handler.engine.decide = crashing    # type: ignore[method-assign]
    lines = [raw(medins()), raw(enrolment("CRASH-ME")), raw(enrolment("P1"))]
    results = asyncio.run(replay_lines(lines, handler))
    assert [r[0].result for r in results] == ["recorded", "rejected", "settled"]
    reason = results[1][0].reason
    assert reason.code == codes.POISON_MESSAGE and "RuntimeError" in reason.message
    assert "CRASH-ME" not in reason.message and "<psn_no>" in reason.message
    [letter] = [e for e in handler.store.ref_events if isinstance(e, ev.MessageRejected)]
    assert letter.raw == lines[1] and letter.source == "replay"


def test_a_dead_letter_of_a_huge_line_keeps_its_first_bytes():
    handler = replay_handler(packs())
    asyncio.run(replay_lines([BIG], handler))
    [letter] = [e for e in handler.store.ref_events if isinstance(e, ev.MessageRejected)]
    assert letter.raw == BIG[:MAX_MESSAGE_BYTES]
