"""The runtime edge against real servers: stream guard rails, resume, the per-subject guard."""

from __future__ import annotations

import asyncio
import json
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.js.api import StorageType
from nats.js.errors import BadRequestError

from services.compose.process import bootstrap
from services.runtime.embedded import EmbeddedProcess, embedded_servers, start_nats
from services.nats.provision import read_only, StreamSetupNeeded
from services.runtime.secrets import person_key, person_key_secret, role_tokens
from services.runtime.settings import Settings, load_settings
from events.subjects import PERSON_SUBJECT, STREAM
from services.nats.fast import EXPECTED_LAST_SUBJECT_SEQ
from services.nats.reads import last_subject_sequence, read_subject
from services.nats.streams import WRONG_LAST_SEQUENCE, ensure_ledger_stream


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the stream -------------------------------------------------------------


@pytest.fixture
def bare_nats(tmp_path: Path) -> Iterator[EmbeddedProcess]:
    """A private server whose streams nobody has set up yet."""
    server = start_nats(tmp_path, port=0, provision=False)
    yield server
    server.stop()


async def test_ensure_ledger_stream_creates_with_guard_rails(bare_nats: EmbeddedProcess) -> None:
    admin = await nats.connect(bare_nats.url_for("admin"))
    try:
        info = await ensure_ledger_stream(admin.jetstream())
    finally:
        await admin.close()
    cfg = info.config
    assert cfg.name == STREAM
    assert cfg.subjects == ["ledger.person.*", "ledger.ref.*", "ledger.ref.key.*"]
    assert cfg.storage == StorageType.FILE
    assert cfg.deny_delete and cfg.deny_purge and cfg.allow_direct and cfg.allow_atomic
    assert cfg.duplicate_window == 120.0
    assert (cfg.max_msgs, cfg.max_bytes, cfg.max_age, cfg.max_msgs_per_subject) == (-1, -1, 0.0, -1)

    nc = await nats.connect(bare_nats.url)                 # the services: the same check, nothing to change
    try:
        again = await ensure_ledger_stream(read_only(nc.jetstream()))
    finally:
        await nc.close()
    assert again.config == cfg


async def test_ensure_ledger_stream_repairs_an_existing_stream(bare_nats: EmbeddedProcess) -> None:
    nc = await nats.connect(bare_nats.url_for("admin"))
    try:
        js = nc.jetstream()
        await js.add_stream(name=STREAM, subjects=["ledger.person.*", "ops.*"], storage="file", max_age=60)
        cfg = (await ensure_ledger_stream(js)).config
        assert cfg.subjects == ["ledger.person.*", "ops.*", "ledger.ref.*", "ledger.ref.key.*"]  # extra kept
        assert cfg.allow_atomic and cfg.deny_delete and cfg.deny_purge and cfg.max_age == 0.0 and cfg.duplicate_window == 120.0
    finally:
        await nc.close()


async def test_ensure_ledger_stream_refuses_memory_storage(bare_nats: EmbeddedProcess) -> None:
    nc = await nats.connect(bare_nats.url_for("admin"))
    try:
        js = nc.jetstream()
        await js.add_stream(name=STREAM, subjects=["ledger.person.*"], storage="memory")
        with pytest.raises(RuntimeError, match="file storage"):
            await ensure_ledger_stream(js)
    finally:
        await nc.close()


async def test_the_services_refuse_a_missing_or_wrong_stream_naming_it(bare_nats: EmbeddedProcess,
                                                                        tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "ledger", person_key_secret="s" * 32)
    with pytest.raises(StreamSetupNeeded, match="stream LEDGER does not exist; .*ledger setup-streams"):
        await bootstrap(settings, nats_url=bare_nats.url, connect_db=False)

    admin = await nats.connect(bare_nats.url_for("admin"))
    try:
        await admin.jetstream().add_stream(name=STREAM, subjects=["ledger.person.*"], storage="file", max_age=60)
    finally:
        await admin.close()
    with pytest.raises(StreamSetupNeeded, match=r"stream LEDGER differs .* in .*deny_delete.*max_age.*subjects"):
        await bootstrap(settings, nats_url=bare_nats.url, connect_db=False)


async def test_expected_last_subject_sequence_rejects_a_stale_writer(js, unique: str) -> None:
    await ensure_ledger_stream(js)
    subject = PERSON_SUBJECT.format(unique)
    assert await last_subject_sequence(js, subject) == 0

    first = await js.publish(subject, b"e1", headers={EXPECTED_LAST_SUBJECT_SEQ: "0"})  # new person
    assert await last_subject_sequence(js, subject) == first.seq

    # Two writers read the same last sequence; exactly one append wins.
    seen = await last_subject_sequence(js, subject)
    results = await asyncio.gather(
        js.publish(subject, b"a", headers={EXPECTED_LAST_SUBJECT_SEQ: str(seen)}),
        js.publish(subject, b"b", headers={EXPECTED_LAST_SUBJECT_SEQ: str(seen)}),
        return_exceptions=True,
    )
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(losers) == 1
    assert isinstance(losers[0], BadRequestError)
    assert losers[0].err_code == WRONG_LAST_SEQUENCE and losers[0].code == 400

    # The loser reloads and appends.
    seen = await last_subject_sequence(js, subject)
    await js.publish(subject, b"c", headers={EXPECTED_LAST_SUBJECT_SEQ: str(seen)})
    assert [m.data for m in await read_subject(js, subject)][-1] == b"c"
    assert len(await read_subject(js, subject)) == 3


async def test_read_subject_in_order_across_batches(js, unique: str) -> None:
    await ensure_ledger_stream(js)
    subject, other = PERSON_SUBJECT.format(unique), PERSON_SUBJECT.format(unique[::-1])
    acks = []
    for i in range(23):
        acks.append(await js.publish(subject, f"{i}".encode(), headers={"Ledger-Event": str(i)}))
        await js.publish(other, b"noise")
    msgs = await read_subject(js, subject, batch=5)
    assert [m.seq for m in msgs] == [a.seq for a in acks]
    assert [m.data for m in msgs] == [f"{i}".encode() for i in range(23)]
    assert msgs[0].headers == {"Ledger-Event": "0"}
    assert [m.seq for m in await read_subject(js, subject, after_seq=acks[19].seq)] == [a.seq for a in acks[20:]]


async def test_read_subject_empty_is_immediate(js, unique: str) -> None:
    await ensure_ledger_stream(js)
    started = time.perf_counter()
    assert await read_subject(js, PERSON_SUBJECT.format(unique)) == []
    assert time.perf_counter() - started < 0.5


# --- embedded servers resume on the same data dir ---------------------------


async def test_embedded_nats_resumes_on_same_data_dir(tmp_path: Path) -> None:
    subject = PERSON_SUBJECT.format("resume")
    server = start_nats(tmp_path, port=0)
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_ledger_stream(js)
        for i in range(3):
            await js.publish(subject, f"{i}".encode())
        await nc.close()
    finally:
        server.stop()

    assert (tmp_path / "nats" / "jetstream").is_dir()
    conf = (tmp_path / "nats" / "nats-server.conf").read_text()
    assert "sync_interval: always" in conf

    server = start_nats(tmp_path, port=0)
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        assert (await js.stream_info(STREAM)).state.messages == 3
        assert [m.data for m in await read_subject(js, subject)] == [b"0", b"1", b"2"]
        await nc.close()
    finally:
        server.stop()


async def test_embedded_servers_start_and_resume_both(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, nats_port=0)
    async with embedded_servers(settings) as (nats_url, database_url):
        assert nats_url.startswith("nats://ledger:") and "@127.0.0.1:" in nats_url
        conn = await asyncpg.connect(database_url)
        await conn.execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
        await conn.close()

    async with embedded_servers(settings) as (_, database_url):
        conn = await asyncpg.connect(database_url)
        assert await conn.fetchval("SELECT v FROM kept") == 7
        await conn.close()


async def test_embedded_servers_use_configured_urls(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, nats_url="nats://nats:4222", database_url="postgresql://db/ledger")
    async with embedded_servers(settings) as urls:
        assert urls == ("nats://nats:4222", "postgresql://db/ledger")
    assert not (tmp_path / "nats").exists() and not (tmp_path / "pg").exists()


async def test_database_url_works_with_asyncpg(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def test_fresh_database_is_empty(fresh_database_url: str) -> None:
    conn = await asyncpg.connect(fresh_database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    finally:
        await conn.close()


# --- secrets and settings ---------------------------------------------------


def test_person_key_is_deterministic_and_hides_psn_no(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    secret = person_key_secret(settings)
    psn_no = "63010000000000012345"
    key = person_key(secret, psn_no)
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert key == person_key(secret, psn_no)
    assert psn_no not in key
    assert key != person_key(secret, "63010000000000012346")
    assert key != person_key(b"another-deployment-secret", psn_no)

    path = tmp_path / "person_key.secret"
    assert _mode(path) == 0o600
    assert person_key_secret(settings) == secret  # reused, not regenerated
    configured = Settings(data_dir=tmp_path, person_key_secret="s" * 32)
    assert person_key_secret(configured) == b"s" * 32


def test_tokens_json_is_created_once_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    tokens = role_tokens(settings)
    path = tmp_path / "tokens.json"
    assert json.loads(path.read_text()) == tokens
    assert list(tokens) == ["platform", "supervisor", "admin"]
    assert len(set(tokens.values())) == 3
    assert _mode(path) == 0o600
    assert role_tokens(settings) == tokens

    env = Settings(data_dir=tmp_path, token_admin="admin-from-env")
    assert role_tokens(env) == {**tokens, "admin": "admin-from-env"}

    other = tmp_path / "elsewhere"
    all_env = Settings(data_dir=other, token_platform="p", token_supervisor="s", token_admin="a")
    assert role_tokens(all_env) == {"platform": "p", "supervisor": "s", "admin": "a"}
    assert not other.exists()  # nothing written when the environment has every token


def test_load_settings_defaults_and_values() -> None:
    assert load_settings({}) == Settings()
    s = load_settings(
        {
            "NATS_URL": "nats://a:4222,nats://b:4222",
            "DATABASE_URL": "postgresql://ledger@db/ledger",
            "LEDGER_DATA_DIR": "/var/lib/ledger",
            "LEDGER_NATS_PORT": "4333",
            "LEDGER_HTTP_PORT": "0",
            "LEDGER_HTTP_HOST": "0.0.0.0",
            "LEDGER_TOKEN_PLATFORM": "tok",
            "LEDGER_STREAM_REPLICAS": "3",
        }
    )
    assert s.nats_url == "nats://a:4222,nats://b:4222" and s.database_url == "postgresql://ledger@db/ledger"
    assert s.data_dir == Path("/var/lib/ledger") and s.tokens_path == Path("/var/lib/ledger/tokens.json")
    assert (s.nats_port, s.http_port, s.http_host) == (4333, 0, "0.0.0.0")
    assert s.explicit_tokens == {"platform": "tok"}
    assert s.stream_replicas == 3
    assert s.pack_archive_dir == Path("/var/lib/ledger/pack-archive")
    assert load_settings({"LEDGER_PACK_ARCHIVE": "/srv/packs"}).pack_archive_dir == Path("/srv/packs")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LEDGER_NATS_PORT", "abc"),
        ("LEDGER_HTTP_PORT", "70000"),
        ("NATS_URL", "localhost:4222"),
        ("DATABASE_URL", "mysql://x"),
        ("LEDGER_PERSON_KEY_SECRET", "short"),
        ("LEDGER_TOKEN_ADMIN", "has space"),
        ("LEDGER_HTTP_HOST", "http://x"),
        ("LEDGER_STREAM_REPLICAS", "2"),
    ],
)
def test_load_settings_names_the_bad_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        load_settings({name: value})
