"""`make chaos`'s machinery on a small scale: one crash scenario (the nats-server killed twice, brought back
by `ledger run` itself) end to end (issue 10.4).

Real processes as in the full run (benchmarks/chaos/stack.py): `ledger run` with its embedded
servers, two adjudicator workers, two `ledger project` replicas; 300 settlements over the three
transports; every end check must pass, and the fault must have happened: the supervisor started a new
nats-server each time (another pid) and the ledger was ready again.
"""
from __future__ import annotations

from pathlib import Path

from benchmarks.chaos.scenarios import SCENARIOS, run_scenario


async def test_a_small_chaos_scenario_passes_its_checks(tmp_path: Path) -> None:
    scenario = next(s for s in SCENARIOS if s.fault == "kill_nats")
    results: list = []
    result = await run_scenario(scenario, tmp_path / "s", results, persons=60, settlements=300, seed=3,
                                prefix="T", log=lambda line: None)
    assert results == [result]
    assert not result.error, result.error
    assert [c.name for c in result.checks if not c.ok] == [], [(c.name, c.detail) for c in result.checks]
    assert len(result.faults) == 2 and all(f.recovered for f in result.faults), result.faults
    assert len({f.target for f in result.faults}) == 2 and all(f.target.startswith("nats pid") for f in result.faults)
    assert "300 settlements" in result.checks[0].detail
