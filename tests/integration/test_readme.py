"""The README's NATS example, run as written against a real `ledger run` with its generated NATS users.

The Python block of "Send one settlement over NATS" is taken from README.md
and run unchanged except for the port (the test's `ledger run` listens on any
free port, the README's on 4222). The `nats` CLI lines are not run: the CLI is
not installed here (their flags are the CLI's documented --user/--password).
"""
from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import nats

from ledger_support import REPO, ledger_run, sigint
from events import samples as s

README = REPO / "README.md"


def python_example() -> str:
    """The heredoc of the README's `.venv/bin/python - <<'EOF'` block."""
    found = re.findall(r"^\.venv/bin/python - <<'EOF'\n(.*?)^EOF$", README.read_text(), re.S | re.M)
    assert len(found) == 1, "expected one Python heredoc in README.md"
    return found[0]


async def test_the_readme_python_example_works_with_the_generated_credentials(tmp_path: Path) -> None:
    code = python_example()
    assert 'json.load(open(".ledger/nats-users.json"))["platform"]' in code   # it shows where the password is
    proc, ready = await ledger_run(tmp_path / ".ledger")
    try:
        port = int(re.search(r"NATS nats://127\.0\.0\.1:(\d+)", ready).group(1))
        assert "@" not in ready                                   # no password on the console
        users = json.loads((tmp_path / ".ledger" / "nats-users.json").read_text())
        assert set(users) == {"platform", "ledger", "admin", "sys"}
        assert all(users[u]["user"] == u and len(users[u]["password"]) >= 32 for u in users)
        assert (tmp_path / ".ledger" / "nats-users.json").stat().st_mode & 0o777 == 0o600
        log = proc.log_path.read_text()  # type: ignore[attr-defined]
        assert '"event": "nats_users"' in log and '"generated": true' in log
        assert not any(u["password"] in log for u in users.values())

        platform = users["platform"]
        nc = await nats.connect(f"nats://127.0.0.1:{port}", user="platform", password=platform["password"])
        for body, msg_type in ((s.medins(), "medins"), (s.identity("RD1", "dibao"), "psn_identity"),
                               (s.enrolment("RD1"), "enrolment")):
            reply = await nc.request(f"ledger.rpc.{msg_type}", s.dumps(body), timeout=10)
            assert json.loads(reply.data)["result"] in ("recorded", "settled"), reply.data
        await nc.close()
        (tmp_path / "settlement.json").write_bytes(s.dumps(s.settlement("RD-S1", "RD1", total="30000.00")))

        assert code.count("nats://127.0.0.1:4222") == 1
        run = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", code.replace("127.0.0.1:4222", f"127.0.0.1:{port}")],
            cwd=tmp_path, capture_output=True, timeout=60)
        assert run.returncode == 0, run.stderr.decode()
    finally:
        assert sigint(proc) == 0
    by_rpc, by_feed = (json.loads(line) for line in run.stdout.decode().splitlines())
    assert (by_rpc["msg_type"], by_rpc["result"], by_rpc["setl_id"]) == ("settlement_result", "settled", "RD-S1")
    assert by_feed == {**by_rpc, "result": "duplicate"}           # the feed saw the same settlement again
