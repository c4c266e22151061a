"""One scenario = one fault on a fresh stack: set up persons, feed settlements on the three transports
while the fault strikes at seeded moments, let everything settle, then run every end check.

A fault's moments are fractions of the scenario's messages answered (drawn
from the seed between 10% and 75%), not wall-clock times, so the same seed
injects at the same point of the feed on a fast machine or a slow one.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.chaos.checks import Check, run_checks
from benchmarks.chaos.cluster_faults import CLUSTER_FAULTS
from benchmarks.chaos.faults import FAULTS, FaultRecord
from benchmarks.chaos.feeders import Answers, Feeders
from benchmarks.chaos.history import read_history
from benchmarks.chaos.readmodels import caught_up, compare_with_rebuild
from benchmarks.chaos.stack import Stack
from benchmarks.chaos.workload import Item, Workload


@dataclass(frozen=True)
class Scenario:
    name: str
    mode: str            # "single" or "r3"
    fault: str           # a key of FAULTS or CLUSTER_FAULTS
    seconds: int         # how long it took at 2 at a time (ADR 0014 run 3): the longest start first
    injections: int = 2


SCENARIOS = (
    Scenario("adjudicator killed", "single", "kill_worker", 150),
    Scenario("projector killed", "single", "kill_projector", 276),
    Scenario("process paused 10 s", "single", "pause_process", 263),
    Scenario("nats-server killed", "single", "kill_nats", 184),
    Scenario("postgres killed", "single", "kill_postgres", 118),
    Scenario("R3 stream leader killed", "r3", "kill_leader", 279),
    Scenario("R3 stream leader paused 10 s", "r3", "pause_leader", 275),
    Scenario("R3 follower's block corrupted", "r3", "corrupt_follower", 269, injections=1),
)


@dataclass
class ScenarioResult:
    name: str
    mode: str
    persons: int
    settlements: int
    messages: int = 0                 # settlements + re-sends
    start_seconds: float = 0.0
    setup_seconds: float = 0.0
    feed_seconds: float = 0.0
    check_seconds: dict[str, float] = field(default_factory=dict)   # phase of the end checks → seconds
    total_seconds: float = 0.0
    retries: dict[str, int] = field(default_factory=dict)
    faults: list[FaultRecord] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.checks) and all(c.ok or c.lost for c in self.checks)

    @property
    def rate(self) -> float:
        return self.messages / self.feed_seconds if self.feed_seconds else 0.0


async def set_up(feeders: Feeders, workload: Workload, concurrency: int = 128) -> None:
    """Hospitals one by one, then every person's status and enrolment (in order per person), over RPC."""
    hospitals, persons = workload.setup()
    for item in hospitals:
        await _must(feeders, item)
    gate = asyncio.Semaphore(concurrency)

    async def person(items: list[Item]) -> None:
        async with gate:
            for item in items:
                await _must(feeders, item)
    await asyncio.gather(*(person(p) for p in persons))


async def _must(feeders: Feeders, item: Item) -> None:
    body = await feeders.deliver(item)
    if body is None or body.get("result") == "rejected":
        raise RuntimeError(f"set-up message {item.msg_type} was not recorded: {body}")


async def _inject(scenario: Scenario, stack: Stack, feeders: Feeders, total: int, rng: random.Random,
                  started: float, records: list[FaultRecord]) -> None:
    fault = {**FAULTS, **CLUSTER_FAULTS}[scenario.fault]
    moments = sorted(rng.uniform(0.10, 0.75) for _ in range(scenario.injections))
    for moment in moments:
        while feeders.done < moment * total:
            await asyncio.sleep(0.1)
        record = FaultRecord(scenario.fault, at=round(time.monotonic() - started, 1), progress=feeders.done)
        records.append(record)
        try:
            await fault(stack, rng, record)
        except Exception as exc:              # a fault that could not be done is reported, not hidden
            record.notes.append(f"fault failed: {type(exc).__name__}: {exc}"[:500])


async def run_scenario(scenario: Scenario, work_dir: Path, results: list[ScenarioResult], *, persons: int,
                       settlements: int, seed: int, prefix: str, log: Callable[[str], None] = print) -> ScenarioResult:
    """Run one scenario; its result is in ``results`` from the start (an interrupted run still reports it)."""
    result = ScenarioResult(scenario.name, scenario.mode, persons, settlements)
    results.append(result)
    rng = random.Random(f"{seed}:{scenario.fault}")
    workload = Workload(prefix, persons, settlements, seed)
    stack = Stack(work_dir, mode=scenario.mode)
    began = time.monotonic()
    try:
        await stack.start()
        result.start_seconds = round(time.monotonic() - began, 1)
        answers = Answers()
        async with Feeders(stack, answers) as feeders:
            started = time.monotonic()
            await set_up(feeders, workload)
            result.setup_seconds = round(time.monotonic() - started, 1)
            items = workload.items()
            result.messages = len(items)
            log(f"{scenario.name}: {persons:,} persons set up in {result.setup_seconds} s; "
                f"feeding {len(items):,} messages")
            started = time.monotonic()
            injector = asyncio.create_task(_inject(scenario, stack, feeders, len(items), rng, started, result.faults))
            try:
                await feeders.run(items)
                await injector
            finally:
                injector.cancel()
            result.feed_seconds = round(time.monotonic() - started, 1)
        result.retries = {f"{t} {why}": n for (t, why), n in sorted(answers.retries.items())}
        log(f"{scenario.name}: fed in {result.feed_seconds} s ({result.rate:,.0f}/s); checking")
        result.checks = await _check(stack, workload, answers, items, result.check_seconds)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:2000]
    except asyncio.CancelledError:
        result.error = "interrupted"
        raise
    finally:
        await stack.close()
        result.total_seconds = round(time.monotonic() - began, 1)
    return result


async def _check(stack: Stack, workload: Workload, answers: Answers, items: list[Item],
                 seconds: dict[str, float]) -> list[Check]:
    """The end checks; ``seconds`` gets how long each phase took (where a scenario's time goes)."""
    import nats

    mark = time.monotonic()

    def took(phase: str) -> None:
        nonlocal mark
        seconds[phase], mark = round(time.monotonic() - mark, 1), time.monotonic()

    nc = await nats.connect(servers=stack.urls_for("ledger").split(","), connect_timeout=5)
    try:
        history = await read_history(nc.jetstream(timeout=10.0))
    finally:
        await nc.close()
    took("stream read")
    await caught_up(stack.database_url, history.last_seq)
    took("projectors catch up")
    comparison = await compare_with_rebuild(stack)
    took("rebuild and compare")
    keys = list(dict.fromkeys(item.key for item in items))
    checks = await run_checks(stack, keys, answers, history, comparison)
    took("verify and the rest")
    return checks
