"""deploy/ runs the same NATS accounts: the real nats-server started with each deploy config, and the
compose / k8s files checked for where the passwords come from.

The configs are used as they are except what only a test may change: client
and monitoring ports become "any free port" on 127.0.0.1, ``store_dir`` a
temporary directory, and the R3 routes point at three local nodes. Each
rewrite must match exactly once, so a changed config fails here rather than
being tested half.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import nats
import pytest
import yaml

from ledger_support import REPO
from services.runtime.embedded import find_nats_server
from services.runtime.nats_users import password_variable
from services.nats.provision import read_only
from services.nats.streams import ensure_ledger_stream

DEPLOY = REPO / "deploy"
USERS = ("platform", "ledger", "admin", "sys")


def _rewrite(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert text.count(old) == 1, f"expected {old!r} once in the deploy config"
        text = text.replace(old, new)
    return text


def _passwords() -> tuple[dict[str, str], dict[str, str]]:
    """Passwords per user, and the server's environment: plain values, the admin's as a bcrypt hash.

    The hash must be ``$2a$`` (what `nats server passwd` writes): nats-server reads an environment
    value as config text, and only ``$2a$`` is exempt from being a ``$variable`` (``$2b$`` fails).
    """
    passwords = {user: secrets.token_hex(16) for user in USERS}
    env = {password_variable(u): p for u, p in passwords.items()}
    env[password_variable("admin")] = bcrypt.hashpw(passwords["admin"].encode(),
                                                    bcrypt.gensalt(6, prefix=b"2a")).decode()
    return passwords, env


def _url(address: str, user: str, passwords: dict[str, str]) -> str:
    return address.replace("nats://", f"nats://{user}:{passwords[user]}@")


@contextlib.contextmanager
def _node(conf: Path, env: dict[str, str], timeout: float = 30.0) -> Iterator[str]:
    """nats-server -c conf (after a -t check); yields its client address once it listens."""
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("NATS_")}, **env}
    check = subprocess.run([str(find_nats_server()), "-c", str(conf), "-t"], env=full_env, capture_output=True)
    assert check.returncode == 0, check.stderr.decode()
    log = (conf.parent / "server.log").open("wb")
    proc = subprocess.Popen([str(find_nats_server()), "-c", str(conf)], env=full_env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, (conf.parent / "server.log").read_text()
            ports = list(conf.parent.glob(f"*_{proc.pid}.ports"))
            if ports:
                with contextlib.suppress(ValueError):
                    yield json.loads(ports[0].read_text())["nats"][0]
                    break
            assert time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.05)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _deploy_conf(name: str, node_dir: Path, extra: dict[str, str] | None = None) -> Path:
    node_dir.mkdir(parents=True)
    text = _rewrite((DEPLOY / "nats" / name).read_text(), {
        "listen: 0.0.0.0:4222": "listen: 127.0.0.1:-1",
        "http: 0.0.0.0:8222": "http: 127.0.0.1:-1",
        "store_dir: /data": f"store_dir: {json.dumps(str(node_dir))}",
        **(extra or {})})
    (node_dir / "accounts.conf").write_text((DEPLOY / "nats" / "accounts.conf").read_text())
    conf = node_dir / name
    conf.write_text(f"{text}\nports_file_dir: {json.dumps(str(node_dir))}\n")
    return conf


def _setup_streams(admin_url: str, **env: str) -> subprocess.CompletedProcess:
    """`ledger setup-streams`, as an operator (or the compose/k8s one-shot job) runs it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "NATS_", "DATABASE_"))}
    return subprocess.run([sys.executable, "-m", "services.cli.main", "setup-streams"], cwd=REPO,
                          env={**clean, "LEDGER_NATS_ADMIN_URL": admin_url, **env}, capture_output=True, timeout=60)


async def _check_users(addresses: list[str], passwords: dict[str, str], replicas: int) -> None:
    """Each user as the accounts file means it, against (possibly different nodes of) one deployment."""
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(addresses[0], allow_reconnect=False, connect_timeout=2)

    platform = await nats.connect(_url(addresses[1 % len(addresses)], "platform", passwords))
    ack = await platform.jetstream().publish("platform.in.settlement", b"{}")
    assert ack.stream == "PLATFORM_IN"
    await platform.close()

    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))
    ledger = await nats.connect(_url(addresses[-1], "ledger", passwords), error_cb=on_error)
    js = ledger.jetstream()
    info = await ensure_ledger_stream(read_only(js))           # the services' start-up check passes
    assert info.config.num_replicas == replicas and info.config.deny_delete
    assert (await js.publish("ledger.person.deploycheck", b"e1")).stream == "LEDGER"
    await ledger.publish("$JS.API.STREAM.DELETE.LEDGER", b"", reply=ledger.new_inbox())
    await ledger.flush()
    for _ in range(100):
        if errors:
            break
        await asyncio.sleep(0.02)
    assert errors == ['nats: permissions violation for publish to "$js.api.stream.delete.ledger"']
    await ledger.close()

    admin = await nats.connect(_url(addresses[0], "admin", passwords))
    assert (await admin.jetstream().stream_info("LEDGER")).state.messages == 1
    await admin.close()
    sys_user = await nats.connect(_url(addresses[0], "sys", passwords))
    await sys_user.close()


async def test_single_node_config(tmp_path: Path) -> None:
    passwords, env = _passwords()
    with _node(_deploy_conf("nats-server.conf", tmp_path / "n"), env) as address:
        done = _setup_streams(_url(address, "admin", passwords))
        assert done.returncode == 0, done.stderr.decode()
        assert passwords["admin"] not in (done.stdout + done.stderr).decode()   # no password in its output
        await _check_users([address], passwords, replicas=1)


def _free_ports(n: int) -> list[int]:
    """Route ports for the three nodes (each must know the others' before it starts)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


async def test_r3_cluster_config(tmp_path: Path) -> None:
    passwords, env = _passwords()
    routes = _free_ports(3)
    route_rewrites = {f"nats-route://nats-{i}.nats:6222": f"nats-route://127.0.0.1:{port}"
                      for i, port in enumerate(routes)}
    with contextlib.ExitStack() as stack:
        addresses = []
        for i, port in enumerate(routes):
            conf = _deploy_conf("cluster-r3.conf", tmp_path / f"nats-{i}",
                                {"listen: 0.0.0.0:6222": f"listen: 127.0.0.1:{port}", **route_rewrites})
            addresses.append(stack.enter_context(_node(conf, {**env, "SERVER_NAME": f"nats-{i}"})))
        deadline = time.monotonic() + 60                 # the JetStream meta group elects its leader first
        while True:
            done = _setup_streams(_url(addresses[0], "admin", passwords), LEDGER_STREAM_REPLICAS="3",
                                  LEDGER_FEED_REPLICAS="3")
            if done.returncode == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        assert done.returncode == 0, done.stderr.decode()
        await _check_users(addresses, passwords, replicas=3)


# --- compose and k8s: the same users, passwords only from the environment / secrets ------------------


def _variables() -> set[str]:
    return set(re.findall(r"\$(NATS_\w+)", (DEPLOY / "nats" / "accounts.conf").read_text()))


def test_accounts_take_every_password_from_a_variable() -> None:
    text = "\n".join(line.split("#", 1)[0] for line in (DEPLOY / "nats" / "accounts.conf").read_text().splitlines())
    assert _variables() == {password_variable(u) for u in USERS}
    assert re.findall(r"password:\s*(\S+)", text) == [f"${password_variable(u)}" for u in
                                                       ("ledger", "admin", "platform", "sys")]
    assert "no_auth_user" not in text


def test_compose_gives_the_passwords_from_the_environment_and_admin_only_to_the_setup_job() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    nats_env = services["nats"]["environment"]
    assert set(nats_env) >= _variables()
    for var in _variables():
        assert nats_env[var].startswith(f"${{{var}:?"), f"{var} must come from the environment"
    assert any(v.startswith("./nats/accounts.conf:") for v in services["nats"]["volumes"])
    ledger_env = services["ledger"]["environment"]
    assert ledger_env["NATS_URL"] == "nats://ledger:${NATS_LEDGER_PASSWORD}@nats:4222"
    assert not any("ADMIN_PASSWORD" in str(v) or k == "LEDGER_NATS_ADMIN_URL" for k, v in ledger_env.items())
    assert services["streams"]["command"] == ["ledger", "setup-streams"]
    assert services["streams"]["environment"]["LEDGER_NATS_ADMIN_URL"].startswith("nats://admin:${NATS_ADMIN_PASSWORD")
    assert services["ledger"]["depends_on"]["streams"] == {"condition": "service_completed_successfully"}


def test_k8s_takes_the_passwords_from_secrets_and_keeps_admin_out_of_the_services() -> None:
    nats_docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "nats.yaml").read_text()))
    statefulset = next(d for d in nats_docs if d["kind"] == "StatefulSet")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "nats-auth"}}]
    secret_cmd = (DEPLOY / "k8s" / "nats.yaml").read_text()
    assert all(f"--from-literal={var}=" in secret_cmd for var in _variables())

    ledger_docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "ledger.yaml").read_text()))
    job = next(d for d in ledger_docs if d["kind"] == "Job")
    job_container = job["spec"]["template"]["spec"]["containers"][0]
    assert job_container["args"] == ["ledger", "setup-streams"]
    assert job_container["envFrom"] == [{"secretRef": {"name": "ledger-nats-admin"}}]
    deployment = next(d for d in ledger_docs if d["kind"] == "Deployment")
    assert "ledger-nats-admin" not in json.dumps(deployment)


def test_no_literal_password_in_deploy() -> None:
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        text = path.read_text(errors="replace")
        for match in re.finditer(r"nats://(\w+):([^@\s]+)@", text):   # a password in a URL is a placeholder
            assert re.fullmatch(r"\$\{\w+(:\?[^}]*)?\}|<password>", match.group(2)), (path, match.group(0))
        for match in re.finditer(r"\bpassword:\s*([^\s,}]+)", text):      # NATS config: a variable
            assert match.group(1).startswith("$"), (path, match.group(0))
        for match in re.finditer(r"(?m)^\s*[A-Z_]*PASSWORD[A-Z_]*:\s*(\S+)", text):  # compose: from the environment
            assert match.group(1).startswith("${"), (path, match.group(0))
        for match in re.finditer(r"--from-literal=[A-Z_]*PASSWORD=(\S+)", text):  # k8s: a placeholder
            assert match.group(1) == "...", (path, match.group(0))
