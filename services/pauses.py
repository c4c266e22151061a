"""Where a slow answer's time goes: garbage-collector pauses and event-loop lag, measured all the time.

Why: a request's latency at the 99th percentile is set by what holds the one
event loop while it waits — a full cyclic collection, a burst of other
decisions — or by the disk under the JetStream acknowledgement (the store times
each append: `Metrics.append_seconds`). These two watchers put the first two in
histograms (`ledger_gc_pause_seconds`, `ledger_event_loop_lag_seconds`) so the
tail can be read off /metrics in production and beside the latency figures in
`make bench` (benchmarks/bench_nats.py).
"""
from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

LAG_EVERY = 0.05      # seconds between loop-lag probes: 20 a second, a few microseconds each


def watch_gc(metrics: Any) -> Callable[[], None]:
    """Time every collection (gc.callbacks); returns the function that stops watching."""
    started: list[float] = [0.0]
    timers = [metrics.gc_pause_seconds.labels(str(g)) for g in range(3)]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            timers[info["generation"]].observe(time.perf_counter() - started[0])

    gc.callbacks.append(on_gc)
    return lambda: gc.callbacks.remove(on_gc)


async def watch_loop_lag(metrics: Any, every: float = LAG_EVERY) -> None:
    """Sleep `every` seconds, again and again, and record how much later than asked the loop woke us."""
    loop = asyncio.get_running_loop()
    lag = metrics.loop_lag_seconds
    while True:
        asked = loop.time() + every
        await asyncio.sleep(every)
        lag.observe(max(0.0, loop.time() - asked))
