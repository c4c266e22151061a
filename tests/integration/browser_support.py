"""A real `ledger run` fed with examples/, and Debian's chromium driven headless through chromedriver.

Chromium is never downloaded by a tool: it is the `chromium` and `chromium-driver` packages (`make test`
installs them when it can). Without them the browser tests skip, except under CI=true, where they fail.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts" / "console"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,900")


@dataclass
class Ledger:
    url: str
    tokens: dict[str, str]
    proc: subprocess.Popen

    def api(self, role: str = "supervisor") -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, headers={"Authorization": f"Bearer {self.tokens[role]}"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_ledger(data_dir: Path) -> Ledger:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "NATS_", "DATABASE_"))}
    env.update(LEDGER_DATA_DIR=str(data_dir), LEDGER_NATS_PORT="0", LEDGER_HTTP_PORT=str(port),
               LEDGER_LOG_LEVEL="debug", PYTHONUNBUFFERED="1")   # all a log may say, checked for psn_no
    log = open(data_dir.parent / "ledger-run.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "services.cli.main", "run"], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, (data_dir.parent / "ledger-run.log").read_text()
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    else:
        stop_ledger(proc)
        raise TimeoutError("ledger run did not become ready")
    return Ledger(url, json.loads((data_dir / "tokens.json").read_text()), proc)


def feed_examples(ledger: Ledger) -> None:
    """Every line of examples/*.jsonl through POST /v1/messages, then wait for the projections."""
    with ledger.api("platform") as http:
        for path in sorted((REPO / "examples").glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    assert http.post("/v1/messages", content=line.encode()).status_code == 200, line
    with ledger.api() as http:
        wait_caught_up(http)


def wait_caught_up(http: httpx.Client, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        views = http.get("/v1/projections").json()
        if views and all(v["lag"] == 0 for v in views):
            return
        time.sleep(0.1)
    raise TimeoutError("projections did not catch up")


def stop_ledger(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def browser_or_skip(profile: Path) -> object:
    """A headless chromium session on a fresh profile; skip (or, with CI=true, fail) when it cannot run here."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip, the test extra)")
    if missing:
        why = f"the console's browser tests need {', '.join(missing)} (make test installs them as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh",
                                              "download.prompt_for_download": False})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
