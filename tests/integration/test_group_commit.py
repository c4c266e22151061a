"""Group commit on a real nats-server (ADR 0016): batches of persons' commits stored as one atomic batch,
answered after its one ack, in per-person order; conflicts and taken keys fall back to one by one."""
from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.results import encode_result
from ledger_support import Collector, person_from_stream, running_ledger
from events import samples as s
from services.adjudicator.group_commit import GroupCommitConfig
from services.adjudicator.service import peek
from services.cli.replay import replay_handler
from services.nats.feed_config import FeedConfig
from services.policy.pack import PackSet
from services.runtime.embedded import start_nats

PACKS = PackSet.from_dir()
SMALL = GroupCommitConfig(limit=16, min_batch=2)     # small batches: many of them, several in flight
QUICK = FeedConfig(ack_wait=5.0, nak_delay=0.05, heartbeat=0.5)   # pulls again soon after a resume


async def burst(admin_nc: Any, platform_js: Any, lines: Iterable[bytes], tag: str, out: Collector,
                feeders: int = 1) -> dict[int, list[dict]]:
    """Publish `lines` on platform.in while the consumer is paused (`feeders` publishers at once, each its
    own share in order), resume, and return each line's answers (by its Nats-Msg-Id)."""
    lines = list(lines)
    admin_js = admin_nc.jetstream()
    await admin_js.pause_consumer("PLATFORM_IN", "adjudicator", "2100-01-01T00:00:00Z")

    async def feeder(share: list[tuple[int, bytes]]) -> None:
        for i, line in share:
            await platform_js.publish(f"platform.in.{peek(line)[0]}", line, headers={"Nats-Msg-Id": f"{tag}-{i}"})

    shares = [[(i, line) for i, line in enumerate(lines) if i % feeders == f] for f in range(feeders)]
    await asyncio.gather(*(feeder(share) for share in shares))
    await admin_js.resume_consumer("PLATFORM_IN", "adjudicator")
    ours = f"{tag}-"
    mine = lambda msgs: [m for m in msgs if (m.headers or {}).get("Ledger-Msg-Id", "").startswith(ours)]  # noqa: E731
    await out.wait_for(lambda msgs: len(mine(msgs)) >= len(lines), timeout=60)
    await asyncio.sleep(0.3)                           # nothing more may come
    got: dict[int, list[dict]] = {}
    for msg in mine(out.msgs):
        got.setdefault(int(msg.headers["Ledger-Msg-Id"].rsplit("-", 1)[1]), []).append(json.loads(msg.data))
    return got


async def _setup(ledger: Any, persons: list[str]) -> None:
    await ledger.handler.handle(s.dumps(s.medins()))
    for psn in persons:
        await ledger.handler.handle(s.dumps(s.enrolment(psn)))


async def test_per_person_order_holds_under_concurrent_feeders(fresh_nats_url: str, fresh_admin_nc,
                                                               fresh_platform_nc, tmp_path: Path) -> None:
    persons = [f"GO-{p}" for p in range(24)]
    lines = [s.dumps(s.settlement(f"GO-{p}-{k}", f"GO-{p}", total="40000.00")) for k in range(6) for p in range(24)]
    async with running_ledger(fresh_nats_url, tmp_path, group_commit=SMALL, feed=QUICK) as ledger:
        await _setup(ledger, persons)
        out = await Collector().start(fresh_platform_nc)
        # Four publishers at once; each person's lines all go through one of them, in order.
        got = await burst(fresh_admin_nc, fresh_platform_nc.jetstream(), lines, "order", out, feeders=4)
        assert ledger.feed is not None and ledger.feed.group is not None
        assert ledger.feed.group.batches >= 2 and ledger.feed.group.batched > len(lines) // 2
        sizes = {"transport": "feed"}
        registry = ledger.metrics.registry
        assert registry.get_sample_value("ledger_group_commit_batch_members_count", sizes) == ledger.feed.group.batches
        assert registry.get_sample_value("ledger_group_commit_batch_members_sum", sizes) == ledger.feed.group.batched
        js = ledger.js
        assert sorted(got) == list(range(len(lines))) and all(len(r) == 1 for r in got.values())
        assert {r[0]["result"] for r in got.values()} == {"settled"}
        for p in range(24):
            _, commits = await person_from_stream(js, ledger.person_key(f"GO-{p}"), f"GO-{p}")
            paid = [r.setl_id for c in commits for r in c.results if getattr(r, "setl_id", None)]
            assert paid == [f"GO-{p}-{k}" for k in range(6)]      # stored in the order they were sent


async def test_a_batch_with_a_stale_member_falls_back_and_answers_each_once(
        fresh_nats_url: str, fresh_admin_nc, fresh_platform_nc, tmp_path: Path) -> None:
    persons = [f"GS-{p}" for p in range(20)]
    config = GroupCommitConfig(limit=64, min_batch=2)
    async with running_ledger(fresh_nats_url, tmp_path / "a", group_commit=config, feed=QUICK) as ledger:
        await _setup(ledger, persons)
        # Another adjudicator moves GS-0 on: this ledger's cached GS-0 is now stale.
        async with running_ledger(fresh_nats_url, tmp_path / "b", transports=False) as other:
            assert (await other.handler.handle(s.dumps(s.settlement("GS-ELSEWHERE", "GS-0"))))[0].result == "settled"
        out = await Collector().start(fresh_platform_nc)
        lines = [s.dumps(s.settlement(f"GS-{p}-1", f"GS-{p}")) for p in range(20)]
        got = await burst(fresh_admin_nc, fresh_platform_nc.jetstream(), lines, "stale", out)
        group = ledger.feed.group
        assert group.fell_back >= 1                                 # the batch holding GS-0 failed whole
        registry = ledger.metrics.registry                          # and the operator sees it
        assert registry.get_sample_value("ledger_group_commit_fell_back_total", {"transport": "feed"}) == group.fell_back
        assert sorted(got) == list(range(20)) and all(len(r) == 1 for r in got.values())
        assert {r[0]["result"] for r in got.values()} == {"settled"}
        _, commits = await person_from_stream(ledger.js, ledger.person_key("GS-0"), "GS-0")
        paid = [r.setl_id for c in commits for r in c.results if getattr(r, "setl_id", None)]
        assert paid == ["GS-ELSEWHERE", "GS-0-1"]
        for p in range(1, 20):
            _, commits = await person_from_stream(ledger.js, ledger.person_key(f"GS-{p}"), f"GS-{p}")
            assert [r.setl_id for c in commits for r in c.results if getattr(r, "setl_id", None)] == [f"GS-{p}-1"]


async def test_two_persons_racing_for_one_setl_id_get_one_settlement(
        fresh_nats_url: str, fresh_admin_nc, fresh_platform_nc, tmp_path: Path) -> None:
    """In one burst to one ledger (the second claimant waits for the next batch), and across two ledgers
    sharing the feed (one batch finds the key taken and falls back)."""
    pairs = 30
    persons = [f"GK-{side}{p}" for p in range(pairs) for side in "AB"]
    lines = [s.dumps(s.settlement(f"GK-SHARED-{p}", f"GK-{side}{p}")) for p in range(pairs) for side in "AB"]
    config = GroupCommitConfig(limit=32, min_batch=2)
    async with running_ledger(fresh_nats_url, tmp_path / "a", group_commit=config, feed=QUICK) as one, \
            running_ledger(fresh_nats_url, tmp_path / "b", group_commit=config, feed=QUICK) as two:
        await _setup(one, persons)
        out = await Collector().start(fresh_platform_nc)
        got = await burst(fresh_admin_nc, fresh_platform_nc.jetstream(), lines, "race", out, feeders=2)
        assert one.feed.group.batches + two.feed.group.batches >= 1
    assert sorted(got) == list(range(len(lines))) and all(len(r) == 1 for r in got.values())
    for p in range(pairs):
        answers = sorted((got[2 * p][0]["result"], got[2 * p + 1][0]["result"]))
        assert answers == ["rejected", "settled"], answers
        refused = next(r[0] for r in (got[2 * p], got[2 * p + 1]) if r[0]["result"] == "rejected")
        assert refused["reason"]["code"] == "setl_id_conflict"


# --- group-committed feed = one-by-one replay ------------------------------------------------------------

_examples = itertools.count()


class Env(msgspec.Struct):
    ledger: Any
    admin_nc: Any
    platform_js: Any
    out: Collector


@pytest.fixture(scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory):
    server = start_nats(tmp_path_factory.mktemp("group-nats"), port=0)
    admin = await nats.connect(server.url_for("admin"))
    platform = await nats.connect(server.url_for("platform"))
    try:
        async with running_ledger(server.url, tmp_path_factory.mktemp("group-data"),
                                  group_commit=GroupCommitConfig(limit=6, min_batch=2), feed=QUICK) as ledger:
            await ledger.handler.handle(s.dumps(s.medins()))
            yield Env(ledger, admin, platform.jetstream(), await Collector().start(platform))
    finally:
        await admin.close()
        await platform.close()
        server.stop()


def _line(op: tuple, prefix: str) -> bytes:
    kind, p, k, total = op
    psn, setl_id = f"{prefix}P{p}", f"{prefix}S{k}"
    if kind == "enrol":
        return s.dumps(s.enrolment(psn))
    if kind == "dibao":
        return s.dumps(s.identity(psn, "dibao"))
    if kind == "cancel":
        return s.dumps(s.cancel(setl_id, psn))
    return s.dumps(s.settlement(setl_id, psn, total=f"{total}.00"))


OPS = st.tuples(st.sampled_from(["enrol", "dibao", "settle", "settle", "settle", "settle", "cancel"]),
                st.integers(0, 5), st.integers(0, 7), st.integers(800, 90_000))


@settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(ops=st.lists(OPS, min_size=4, max_size=40))
async def test_a_group_committed_feed_equals_one_by_one_replay(env: Env, ops: list[tuple]) -> None:
    prefix = f"H{next(_examples)}x"
    persons = sorted({op[1] for op in ops})
    # Most persons enrolled first, so that most settlements are paid and batches hold commits.
    lines = [_line(("enrol", p, 0, 0), prefix) for p in persons[: max(1, len(persons) - 1)]]
    lines += [_line(op, prefix) for op in ops]
    replay = replay_handler(PACKS)
    await replay.handle(s.dumps(s.medins()))
    expected = [[json.loads(encode_result(r)) for r in await replay.handle(line)] for line in lines]
    got = await burst(env.admin_nc, env.platform_js, lines, prefix, env.out)
    assert [got.get(i) for i in range(len(lines))] == expected          # each line: the same answers, once
    memory = replay.store
    for p in persons:
        psn = f"{prefix}P{p}"
        _, commits = await person_from_stream(env.ledger.js, env.ledger.person_key(psn), psn)
        want = [c for who, c in memory.commits if who == psn]
        assert [_shape(c) for c in commits] == [_shape(c) for c in want]


def _shape(commit: Any) -> tuple:
    """A commit as stored, without what differs by when and where it was decided (ids, timestamps)."""
    return ([type(e).__name__ for e in commit.events], [json.loads(encode_result(r)) for r in commit.results])


async def test_zz_the_replay_examples_were_group_committed(env: Env) -> None:
    """The property above held over batches, not only over messages that happened to go one by one."""
    group = env.ledger.feed.group
    assert group.batches >= 5 and group.batched >= 20
