"""The pause watchers (services/pauses.py) and the benchmark's reading of them (benchmarks/tail.py)."""
from __future__ import annotations

import asyncio
import gc
import time

from benchmarks import tail
from services.observability import Metrics
from services.pauses import watch_gc, watch_loop_lag


def _count(metrics: Metrics, name: str) -> float:
    return sum(s.value for f in metrics.registry.collect() if f.name == name for s in f.samples
               if s.name.endswith("_count"))


def test_every_collection_is_timed_until_the_watch_stops() -> None:
    metrics = Metrics()
    stop = watch_gc(metrics)
    try:
        gc.collect()
        gc.collect(0)
    finally:
        stop()
    counted = _count(metrics, "ledger_gc_pause_seconds")
    assert counted >= 2
    gc.collect()
    assert _count(metrics, "ledger_gc_pause_seconds") == counted


def test_a_blocked_loop_shows_as_lag() -> None:
    """The loop held for 80 ms once: a probe due within it woke more than 25 ms late."""
    metrics = Metrics()

    async def main() -> None:
        watcher = asyncio.create_task(watch_loop_lag(metrics, every=0.01))
        await asyncio.sleep(0.05)
        time.sleep(0.08)                      # a decision that held the loop
        await asyncio.sleep(0.05)
        watcher.cancel()

    asyncio.run(main())
    lag = {le: c for (labels, buckets) in [next(iter(_histograms(metrics)["ledger_event_loop_lag_seconds"].items()))]
           for le, c in buckets.items()}
    over_25ms = lag[float("inf")] - lag[0.025]
    assert over_25ms >= 1


def _histograms(metrics: Metrics) -> dict:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families
    out: dict = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
                out.setdefault(family.name, {}).setdefault(labels, {})[float(sample.labels["le"])] = sample.value
    return out


def test_a_window_reads_the_difference_and_its_tail() -> None:
    before = {"h": {(): {0.001: 5.0, 0.01: 5.0, float("inf"): 5.0}}}
    after = {"h": {(): {0.001: 5.0 + 98, 0.01: 5.0 + 99, float("inf"): 5.0 + 100}}}
    assert tail.summary(tail.window(before, after, "h")) == {"count": 100, "p99_le_ms": 10.0, "max_le_ms": None}


def test_the_frozen_generation_is_read_by_a_gauge() -> None:
    metrics = Metrics()
    gc.freeze()
    try:
        frozen = next(s.value for f in metrics.registry.collect() if f.name == "ledger_gc_frozen_objects"
                      for s in f.samples)
        assert frozen == gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
