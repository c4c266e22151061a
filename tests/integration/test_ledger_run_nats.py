"""`ledger run` against a NATS it did not start (NATS_URL): who sets up the streams, and credentials not in the URL."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nats
import nkeys
import pytest

from ledger_support import ledger_run, sigint
from services.nats.connect import connect
from services.runtime.embedded import EmbeddedProcess, find_nats_server, start_nats
from services.runtime.settings import load_settings


@pytest.fixture
def bare_nats(tmp_path: Path) -> Iterator[EmbeddedProcess]:
    """A NATS with the ledger's accounts whose streams nobody has set up (a new cluster)."""
    server = start_nats(tmp_path / "nats-host", port=0, provision=False)
    yield server
    server.stop()


async def test_ledger_run_with_only_the_services_user_stops_naming_the_missing_stream(
        bare_nats: EmbeddedProcess, fresh_database_url: str, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as failed:
        await ledger_run(tmp_path / "data", NATS_URL=bare_nats.url, DATABASE_URL=fresh_database_url)
    assert "stream LEDGER does not exist" in str(failed.value)
    assert "ledger setup-streams" in str(failed.value) and "LEDGER_NATS_ADMIN_URL" in str(failed.value)
    assert bare_nats.users["ledger"].password not in str(failed.value)


async def test_ledger_run_sets_the_streams_up_with_an_admin_url_then_runs_as_the_services(
        bare_nats: EmbeddedProcess, fresh_database_url: str, tmp_path: Path) -> None:
    proc, ready = await ledger_run(tmp_path / "data", NATS_URL=bare_nats.url, DATABASE_URL=fresh_database_url,
                                   LEDGER_NATS_ADMIN_URL=bare_nats.url_for("admin"))
    try:
        assert f"NATS {bare_nats.anonymous_url} " in ready + " "     # shown without its password
        admin = await nats.connect(bare_nats.url_for("admin"))
        js = admin.jetstream()
        assert (await js.stream_info("LEDGER")).config.deny_delete
        assert (await js.consumer_info("PLATFORM_IN", "adjudicator")).config.durable_name == "adjudicator"
        await admin.close()
        platform = await nats.connect(bare_nats.url_for("platform"))
        reply = await platform.request("ledger.rpc.settlement", b"{not json", timeout=10)
        assert json.loads(reply.data)["msg_type"] == "rejected"
        await platform.close()
    finally:
        assert sigint(proc) == 0
    log = proc.log_path.read_text()  # type: ignore[attr-defined]
    for name in ("ledger", "admin"):
        assert bare_nats.users[name].password not in log and bare_nats.users[name].password not in ready


async def test_an_nkey_seed_file_authenticates_the_services(tmp_path: Path) -> None:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    (tmp_path / "ledger.nk").write_bytes(seed + b"\n")
    (tmp_path / "nkey.conf").write_text(
        f'listen: "127.0.0.1:-1"\nports_file_dir: "{tmp_path}"\n'
        f'authorization {{ users: [ {{ nkey: {public} }} ] }}\n')
    proc = subprocess.Popen([str(find_nats_server()), "-c", str(tmp_path / "nkey.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            ports = list(tmp_path.glob(f"*_{proc.pid}.ports"))
            if ports and ports[0].stat().st_size:
                break
            await asyncio.sleep(0.02)
        address = json.loads(ports[0].read_text())["nats"][0]
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(address, allow_reconnect=False, connect_timeout=2)
        settings = load_settings({"NATS_URL": address, "LEDGER_NATS_NKEY_SEED": str(tmp_path / "ledger.nk")})
        nc = await connect(settings.nats_url, **settings.nats_auth)
        sub = await nc.subscribe("nkey.check")
        await nc.publish("nkey.check", b"ok")
        assert (await sub.next_msg(timeout=2)).data == b"ok"
        await nc.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_an_nkey_seed_that_is_not_a_file_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="LEDGER_NATS_NKEY_SEED"):
        load_settings({"LEDGER_NATS_NKEY_SEED": str(tmp_path / "missing.nk")})
