"""A real `ledger run` (embedded NATS and PostgreSQL, any free ports) with a little decided traffic, for the
tests that judge the HTTP edge as a client sees it: roles per route, leaks, schemathesis.

Its stderr (every log line, at debug level) goes to a file the tests read; the role tokens are given in the
environment so the tests know every secret the process holds.
"""
from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from events import samples as s

REPO = Path(__file__).resolve().parents[2]
PSN = "PII-110101196001011234"          # looks like what it stands for: it must never show
OTHER_PSN = "PII-NOT-ENROLLED-0042"
READY = re.compile(rb"claims-ledger ready: HTTP (http://\S+)\s+NATS (nats://\S+)")


@dataclass
class LedgerApp:
    url: str
    nats_url: str
    tokens: dict[str, str]
    data_dir: Path
    stderr: Path
    proc: subprocess.Popen
    ids: dict[str, str] = field(default_factory=dict)     # a settlement, a dead letter, an audit of the traffic

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def secrets(self) -> list[str]:
        """Every value that must never show in a log line, a metric or an error body."""
        key = (self.data_dir / "person_key.secret").read_text().strip()
        return [*self.tokens.values(), key, PSN, OTHER_PSN]

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


def _wait_for_ready(proc: subprocess.Popen, timeout: float) -> re.Match:
    found: list[re.Match] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if m := READY.search(line):
                found.append(m)
                return
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not found:
        proc.kill()
        proc.wait(10)
        raise TimeoutError(f"ledger run did not become ready in {timeout}s (exit {proc.returncode})")
    return found[0]


def _until(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the read side did not catch up")
        time.sleep(0.05)


def _seed(app: LedgerApp) -> None:
    with httpx.Client(base_url=app.url, timeout=20) as http:
        for body in (s.medins(), s.identity(PSN, "dibao"), s.enrolment(PSN), s.settlement("SEED-1", PSN, total=42000),
                     s.settlement("SEED-X", OTHER_PSN)):
            assert http.post("/v1/messages", content=s.dumps(body), headers=app.auth("platform")).status_code == 200
        assert http.post("/v1/messages", content=b"{not json", headers=app.auth("platform")).status_code == 400
        sup = app.auth("supervisor")

        def caught_up() -> bool:
            views = http.get("/v1/projections", headers=sup).json()
            return len(views) == 3 and all(v["lag"] == 0 for v in views)
        _until(caught_up)
        letters = http.get("/v1/dead-letters", headers=sup).json()["dead_letters"]
        audit = http.post("/v1/audits", json={"area": "1410"}, headers=sup).json()
        app.ids.update(setl_id="SEED-1", dead_letter=next(d["id"] for d in letters if d["code"] == "not_enrolled"),
                       audit=audit["id"])
        _until(lambda: http.get(f"/v1/audits/{audit['id']}", headers=sup).json()["status"] in ("done", "failed"))


def start_ledger_app(data_dir: Path, timeout: float = 120.0) -> LedgerApp:
    tokens = {role: f"{role}-{secrets.token_urlsafe(24)}" for role in ("platform", "supervisor", "admin")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "NATS_", "DATABASE_"))}
    env.update(LEDGER_DATA_DIR=str(data_dir), LEDGER_NATS_PORT="0", LEDGER_HTTP_PORT="0", LEDGER_LOG_LEVEL="debug",
               PYTHONUNBUFFERED="1", **{f"LEDGER_TOKEN_{r.upper()}": t for r, t in tokens.items()})
    data_dir.mkdir(parents=True, exist_ok=True)
    stderr = data_dir.parent / "ledger-run.stderr"
    with open(stderr, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli.main", "run"], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=err)
    try:
        ready = _wait_for_ready(proc, timeout)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}: {stderr.read_text(errors='replace')[-3000:]}") from None
    app = LedgerApp(ready.group(1).decode(), ready.group(2).decode(), tokens, data_dir, stderr, proc)
    try:
        _seed(app)
    except BaseException:
        stop_ledger_app(app)
        raise
    return app


def stop_ledger_app(app: LedgerApp, timeout: float = 60.0) -> int:
    if app.proc.poll() is None:
        app.proc.send_signal(signal.SIGINT)
        try:
            app.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            app.proc.kill()
            app.proc.wait(timeout)
    return app.proc.returncode


@pytest.fixture(scope="module")
def ledger_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerApp]:
    try:
        app = start_ledger_app(tmp_path_factory.mktemp("ledger-app") / "data")
    except TimeoutError as first:
        # pgserver gives `pg_ctl start` a fixed 10 s (pgserver/postgres_server.py); on a loaded machine that
        # can expire, surfacing as "No such file or directory: .../pg/log". One more try, in a new directory.
        if "pg/log" not in str(first):
            raise
        app = start_ledger_app(tmp_path_factory.mktemp("ledger-app") / "data")
    yield app
    assert stop_ledger_app(app) == 0, app.log()[-4000:]
