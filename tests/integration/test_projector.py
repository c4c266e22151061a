"""The projector against real nats-server and PostgreSQL: same rows as the pure folds, crash safety,
one owner per projection, blue/green rebuild under traffic."""
from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from decimal import Decimal

import msgspec
import pytest

from events.results import SettlementResult
from projections.rebuild import rebuild
from projections.runner import Projector
from projections.sample import decided, traffic
from readside_helpers import (SEAL_KEY, SECRET, checkpoints, expected_tables, project_until, publish,
                              read_tables)
from services.runtime.secrets import person_key

PERSONS = 150


@pytest.fixture(scope="module")
async def store():
    return await decided(traffic(PERSONS, seed=11))


async def test_projections_equal_the_fold_of_replay_output(env, store) -> None:
    last = await publish(env.js, store)
    assert last == len(store.commits)
    await project_until(env.dsn, env.pool, env.js, last)
    assert await checkpoints(env.pool) == {"claims": last, "audit_trail": last, "dead_letters": last}
    assert await read_tables(env.pool) == expected_tables(store)

    # ... and the rows say what `ledger replay` answered: each settlement's figures, each person-year's counters.
    settled = {r.setl_id: r for _, c in store.commits for r in c.results
               if isinstance(r, SettlementResult) and r.result == "settled"}
    rows = {r["setl_id"]: r for r in await env.pool.fetch("SELECT * FROM settlement")}
    assert set(rows) == set(settled)
    for setl_id, result in settled.items():
        row = rows[setl_id]
        assert (row["hifmi_pay"], row["maf_pay"], row["hosp_part_amt"], row["psn_part_amt"], row["status"]) == (
            result.hifmi_pay, result.maf_pay, result.hosp_part_amt, result.psn_part_amt, result.status)
    for psn_no, person in store.persons.items():
        for year, counters in person.years.items():
            row = await env.pool.fetchrow("SELECT * FROM person_year WHERE person_key = $1 AND year = $2",
                                          person_key(SECRET, psn_no), year)
            assert (row["ci_base"], row["ci_paid"], row["assist_base"], row["cap_used"]) == (
                counters.ci_base, counters.ci_paid, counters.assist_base, counters.assistance_cap_used)
            rules = {r["rule_id"]: r["amount"] for r in await env.pool.fetch(
                "SELECT rule_id, amount FROM person_year_rule WHERE person_key = $1 AND year = $2 AND amount <> 0",
                person_key(SECRET, psn_no), year)}
            assert rules == {k: v for k, v in counters.rule_totals.items() if v}


async def test_a_projector_killed_mid_batch_counts_nothing_twice(env, store) -> None:
    part = len(store.commits) // 2
    await publish(env.js, store, 0, part)
    rng = random.Random(3)
    cancels = 0
    # Cancel at random moments, between batches or inside a transaction, until some batches are in (a
    # projector starting on a loaded machine may not reach its first batch within the shortest lives).
    while cancels < 8 or not min((await checkpoints(env.pool)).values(), default=0):
        task = asyncio.create_task(Projector(env.dsn, env.pool, env.js, seal_key=SEAL_KEY, max_batch=7).run())
        await asyncio.sleep(rng.uniform(0.005, 0.08) * (1 + cancels // 8))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        cancels += 1
    last = await publish(env.js, store, part)
    before = min((await checkpoints(env.pool)).values())
    assert 0 < before <= part
    # A projector process killed with SIGKILL as soon as it has written: whatever it was in dies with it.
    proc = subprocess.Popen([sys.executable, "-m", "services.cli.main", "project", "--batch", "10"],
                            env={**os.environ, "NATS_URL": env.nats_url, "DATABASE_URL": env.dsn,
                                 "LEDGER_SEAL_SECRET": SEAL_KEY.decode()},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1000):
            if min((await checkpoints(env.pool)).values()) > before:
                break
            await asyncio.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    await project_until(env.dsn, env.pool, env.js, last)
    assert await read_tables(env.pool) == expected_tables(store)


async def test_one_owner_per_projection_and_takeover(env, store) -> None:
    half = len(store.commits) // 2
    await publish(env.js, store, 0, half)
    first = Projector(env.dsn, env.pool, env.js, seal_key=SEAL_KEY, owner="first", takeover_every=0.1)
    second = Projector(env.dsn, env.pool, env.js, seal_key=SEAL_KEY, owner="second", takeover_every=0.1)
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    t1 = asyncio.create_task(first.run(stop_first))
    await asyncio.sleep(0.3)
    t2 = asyncio.create_task(second.run(stop_second))
    await asyncio.sleep(0.3)
    assert sorted(first.owned) == ["audit_trail", "claims", "dead_letters"] and second.owned == []
    stop_first.set()                      # the owner goes away; the other replica takes over
    await t1
    last = await publish(env.js, store, half)
    for _ in range(100):
        if min((await checkpoints(env.pool)).values()) >= last:
            break
        await asyncio.sleep(0.05)
    assert sorted(second.owned) == ["audit_trail", "claims", "dead_letters"]
    stop_second.set()
    await t2
    owners = {r["owner"] for r in await env.pool.fetch("SELECT owner FROM projection_checkpoint")}
    assert owners == {"second"}
    assert await read_tables(env.pool) == expected_tables(store)


async def test_rebuild_during_live_traffic_ends_identical_to_a_fresh_rebuild(env, store) -> None:
    third = len(store.commits) // 3
    await publish(env.js, store, 0, third)
    stop = asyncio.Event()
    live = asyncio.create_task(Projector(env.dsn, env.pool, env.js, seal_key=SEAL_KEY, max_batch=50,
                                         takeover_every=0.1).run(stop))

    async def traffic_in_slices() -> int:
        last = 0
        for start in range(third, len(store.commits), 25):
            last = await publish(env.js, store, start, start + 25)
            await asyncio.sleep(0.01)
        return last

    feeding = asyncio.create_task(traffic_in_slices())
    seen = []
    state = await rebuild(env.dsn, env.pool, env.js, seal_key=SEAL_KEY, max_batch=60,
                          progress=lambda s: seen.append(s.seq))
    last = await feeding
    assert state.seq >= third and seen == sorted(seen)
    for _ in range(200):
        if min((await checkpoints(env.pool)).values()) >= last:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await live
    after_live = await read_tables(env.pool)
    assert after_live == expected_tables(store)
    generation = await env.pool.fetchval("SELECT min(generation) FROM projection_checkpoint")
    await rebuild(env.dsn, env.pool, env.js, seal_key=SEAL_KEY)                      # a fresh rebuild with no traffic
    assert await read_tables(env.pool) == after_live
    assert await env.pool.fetchval("SELECT min(generation) FROM projection_checkpoint") == generation + 1
    statuses = {r["status"] for r in await env.pool.fetch("SELECT status FROM projection_rebuild")}
    assert statuses == {"swapped"}
    leftovers = await env.pool.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rebuild_%' "
                                     "OR nspname LIKE 'retired_%'")
    assert leftovers == []
    total = await env.pool.fetchval("SELECT sum(amount) FROM fund_flow")
    assert isinstance(total, Decimal)


async def test_a_small_settlement_index_reloads_from_the_tables(env, store, monkeypatch) -> None:
    """Cancels and adjustments of settlements dropped from the bounded index are read back from SQL,
    by the live projector and by a rebuild (which first lets its writer drain)."""
    import projections.catalog
    import projections.load
    from projections.workers import NatsAt
    monkeypatch.setattr(projections.catalog, "MAX_INDEX", 10)
    reloaded = []
    load = projections.load.load_settlements

    async def counted(conn, schema, state, keys):
        reloaded.append(len(keys))
        await load(conn, schema, state, keys)

    monkeypatch.setattr(projections.load, "load_settlements", counted)
    last = await publish(env.js, store)
    await project_until(env.dsn, env.pool, env.js, last, max_batch=30)
    expected = expected_tables(store)
    assert await read_tables(env.pool) == expected
    await rebuild(env.dsn, env.pool, env.js, ["claims"], seal_key=SEAL_KEY, max_batch=40)
    assert await read_tables(env.pool) == expected and sum(reloaded) > 0
    reloaded.clear()                                     # this process's share reloads; the other's need not
    await rebuild(env.dsn, env.pool, env.js, ["claims"], seal_key=SEAL_KEY, max_batch=40, workers=2, connect=NatsAt(env.nats_url))
    assert await read_tables(env.pool) == expected and sum(reloaded) > 0


async def test_a_rebuild_split_over_workers_gives_the_same_tables_and_indexes(env, store) -> None:
    """Persons split by key hash and events by sequence range over three processes (two spawned), then
    the audit trail alone over two: the tables equal the folds, and every index is back under its
    migrated name and definition."""
    from projections.workers import NatsAt
    indexes = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
    migrated = [tuple(r) for r in await env.pool.fetch(indexes)]
    last = await publish(env.js, store)
    state = await rebuild(env.dsn, env.pool, env.js, seal_key=SEAL_KEY, max_batch=40, workers=3, connect=NatsAt(env.nats_url))
    assert state.seq == last and state.events == sum(len(c.events) for _, c in store.commits)
    assert await read_tables(env.pool) == expected_tables(store)
    assert [tuple(r) for r in await env.pool.fetch(indexes)] == migrated
    await rebuild(env.dsn, env.pool, env.js, ["audit_trail"], seal_key=SEAL_KEY, max_batch=25,
                  workers=2, connect=NatsAt(env.nats_url))
    assert await read_tables(env.pool) == expected_tables(store)
    assert await checkpoints(env.pool) == {"claims": last, "audit_trail": last, "dead_letters": last}


async def test_a_rebuild_escapes_what_copy_would_misread(env, store) -> None:
    """Strings with quotes, commas, backslashes, tabs and newlines, a dead letter's raw bytes, and a commit
    stored with whitespace between its tokens (outside its events, which are sealed as written): the lean
    COPY lines must escape them all, and the tables still equal the live projector's folds of the same bytes."""
    import msgspec

    from events import ledger as ev
    from events.chain import encode_sealed
    from projections.sample import stored_commit
    from readside_helpers import expected_from_stored
    odd = 'say "hi", \\ back\tslash\nnew line'
    stored = [stored_commit(p, c, SECRET, SEAL_KEY) for p, c in store.commits]
    subject, psn, commit = next((s, p, c) for (s, _), (p, c) in zip(stored, store.commits)
                                if isinstance(c.events[0], ev.HospitalStaySettled) and len(c.events) > 2)
    head = [c for p, c in store.commits if p == psn][-1].events[-1].hash       # continues the person's chain
    setl_id = commit.events[0].setl_id
    changed = [msgspec.structs.replace(e, setl_id=f"{setl_id}-odd", clause=odd) if hasattr(e, "clause") else
               msgspec.structs.replace(e, setl_id=f"{setl_id}-odd", settlement=msgspec.structs.replace(
                   e.settlement, setl_id=f"{setl_id}-odd", dise_codg=odd)) if isinstance(e, ev.SettlementFacts) else e
               for e in commit.events]
    changed[0] = msgspec.structs.replace(changed[0], prev_hash=head)
    stored.append((subject, encode_sealed(SEAL_KEY, subject, msgspec.structs.replace(commit, events=changed,
                                                                                     results=[]))))
    rejected = ev.MessageRejected(code="bad_json", message=odd, msg_type=None, raw=b'x={"x": "\t\\"}\x00\xff',
                                  source=odd, event_id="odd-1")
    stored.append(("ledger.ref.rejected", encode_sealed(SEAL_KEY, "ledger.ref.rejected",
                                                        ev.Commit("odd-1", "odd-1", [rejected]))))
    spaced = stored[-3][1].replace(b',"events":[', b',\r\n\t"events" :\t[\r\n', 1)
    assert spaced != stored[-3][1]
    stored[-3] = (stored[-3][0], spaced)                   # whitespace, tabs and CRs between tokens
    for subject_, data in stored:
        await env.js.publish(subject_, data)
    await rebuild(env.dsn, env.pool, env.js, seal_key=SEAL_KEY, max_batch=70)
    assert await env.pool.fetchval("SELECT count(*) FROM forged_message") == 0
    assert await read_tables(env.pool) == expected_from_stored(stored)
    payload = await env.pool.fetchval("SELECT payload FROM ledger_event WHERE seq = $1 AND idx = 0", len(stored) - 2)
    assert payload == bytes(msgspec.json.decode(spaced, type=_Slices).events[0])       # the stored bytes, exactly
    raw = await env.pool.fetchval("SELECT raw FROM dead_letter WHERE event_id = 'odd-1'")
    assert raw == rejected.raw


class _Slices(msgspec.Struct):
    events: list[msgspec.Raw]


async def test_a_rebuild_records_forged_and_replayed_commits_as_the_live_projector_does(env, store) -> None:
    """A commit without a seal, one sealed with another key, one whose event was edited after sealing, and
    a sealed commit published again on its own subject: the live projector records each as forged and
    folds none of them, with the alarm; the lean rebuild, in one process and in two, gives the same tables
    (forged_message included) and raises the same alarm."""
    from structlog.testing import capture_logs

    from events import ledger as ev
    from events.chain import encode_sealed
    from projections.workers import NatsAt
    half = len(store.commits) // 2
    await publish(env.js, store, 0, half)
    (psn, first), (psn_b, second) = next((a, b) for a, b in zip(store.commits[:half], store.commits[1:half])
                                         if a[0] != b[0] and isinstance(a[1].events[0], ev.HospitalStaySettled))
    subject = subject_of_commit(psn, first)
    forged = [
        (subject, ev.COMMIT_ENCODER.encode(first)),                                         # no seal
        (subject, encode_sealed(b"not-the-ledger-seal-key-000000001", subject, first)),     # another key
        (subject, encode_sealed(SEAL_KEY, subject, first).replace(b'"setl_id":"', b'"setl_id":"X', 1)),  # edited
        (subject, encode_sealed(SEAL_KEY, subject, first)),                                 # replayed
        (subject_of_commit(psn_b, second), encode_sealed(SEAL_KEY, subject, second)),       # sealed elsewhere
    ]
    seqs = [(await env.js.publish(s, d)).seq for s, d in forged]
    last = await publish(env.js, store, half)
    with capture_logs() as logs:
        await project_until(env.dsn, env.pool, env.js, last, max_batch=35)
    live = await read_tables(env.pool)
    reasons = {r["seq"]: r["reason"] for r in await env.pool.fetch("SELECT seq, reason FROM forged_message")}
    assert sorted(reasons) == seqs and reasons[seqs[0]] == "no seal" and "chain" in reasons[seqs[3]]
    assert len(live["ledger_commit"]) == len(store.commits)             # nothing forged is folded
    assert await env.pool.fetchval("SELECT count(*) FROM ledger_event WHERE seq = ANY($1::bigint[])", seqs) == 0
    alarms = lambda logs: sorted(e["seq"] for e in logs if e["event"] == "stream_loss_detected")  # noqa: E731
    assert alarms(logs) == seqs
    with capture_logs() as logs:
        await rebuild(env.dsn, env.pool, env.js, seal_key=SEAL_KEY, max_batch=35)
    assert alarms(logs) == seqs
    assert await read_tables(env.pool) == live
    await rebuild(env.dsn, env.pool, env.js, seal_key=SEAL_KEY, max_batch=35, workers=2, connect=NatsAt(env.nats_url))
    assert await read_tables(env.pool) == live


def subject_of_commit(psn_no, commit) -> str:
    from projections.sample import subject_of
    return subject_of(psn_no, commit, SECRET)


async def test_migrations_apply_once_in_order_and_refuse_an_edited_one(fresh_database_url, tmp_path) -> None:
    import asyncpg

    from projections.db import MIGRATIONS_DIR, migrate
    conn = await asyncpg.connect(fresh_database_url)
    try:
        first = await migrate(conn)
        assert first == [p.name for p in sorted(MIGRATIONS_DIR.glob("*.sql"))]
        assert await migrate(conn) == []                                   # applied once
        extra = tmp_path / "migrations"
        extra.mkdir()
        for path in MIGRATIONS_DIR.glob("*.sql"):
            (extra / path.name).write_text(path.read_text())
        (extra / "9999_more.sql").write_text("CREATE TABLE extra_table (x int);")
        assert await migrate(conn, extra) == ["9999_more.sql"]
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == sorted(versions) and versions[-1] == 9999
        (extra / "9999_more.sql").write_text("CREATE TABLE extra_table (x bigint);")
        with pytest.raises(RuntimeError, match="changed after it was applied"):
            await migrate(conn, extra)
    finally:
        await conn.close()
