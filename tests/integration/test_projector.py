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
    monkeypatch.setattr(projections.catalog, "MAX_INDEX", 10)
    last = await publish(env.js, store)
    await project_until(env.dsn, env.pool, env.js, last, max_batch=30)
    expected = expected_tables(store)
    assert await read_tables(env.pool) == expected
    await rebuild(env.dsn, env.pool, env.js, ["claims"], seal_key=SEAL_KEY, max_batch=40)
    assert await read_tables(env.pool) == expected


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
