"""Where the tail comes from: the ledger's own pause histograms (services/pauses.py), read over a window.

A benchmark scrapes a process's Prometheus text before and after a latency run and
reads the difference of each histogram: how many garbage collections ran and how
long the longest took, how late the event loop ran its timers, how long JetStream
took to acknowledge an append (the fsync). Beside the requests' own p99 this says
whether the slow answers waited on the collector, on the loop or on the disk.
"""
from __future__ import annotations

import urllib.request
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

Buckets = dict[tuple[str, ...], dict[float, float]]     # labels (without le) → upper bound → cumulative count


def scrape(port: int) -> dict[str, Buckets]:
    """Every histogram's cumulative buckets, by metric name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as reply:
        return histograms(reply.read().decode())


def histograms(text: str) -> dict[str, Buckets]:
    """Every histogram's cumulative buckets in a Prometheus text exposition."""
    out: dict[str, Buckets] = defaultdict(lambda: defaultdict(dict))
    for family in text_string_to_metric_families(text):
        if family.type != "histogram":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
                out[family.name][labels][float(sample.labels["le"])] = sample.value
    return out


def window(before: dict[str, Buckets], after: dict[str, Buckets], name: str) -> dict[float, float]:
    """The histogram `name` over the window, all labels summed: upper bound → count in the window."""
    total: dict[float, float] = defaultdict(float)
    for labels, buckets in after.get(name, {}).items():
        old = before.get(name, {}).get(labels, {})
        for le, count in buckets.items():
            total[le] += count - old.get(le, 0.0)
    return dict(sorted(total.items()))


def summary(buckets: dict[float, float]) -> dict[str, float | int | None]:
    """Count, and the bucket bounds holding the 99th percentile and the largest observation (ms)."""
    count = int(buckets.get(float("inf"), 0))
    if not count:
        return {"count": 0, "p99_le_ms": None, "max_le_ms": None}
    bounds = list(buckets.items())
    p99 = next(le for le, c in bounds if c >= 0.99 * count)
    largest = next(le for le, c in bounds if c >= count)
    as_ms = lambda le: None if le == float("inf") else round(le * 1000, 3)
    return {"count": count, "p99_le_ms": as_ms(p99), "max_le_ms": as_ms(largest)}


def pauses(before: dict[str, Buckets], after: dict[str, Buckets]) -> dict[str, dict]:
    """The three places a slow answer waits, over one window."""
    return {
        "gc_pauses": summary(window(before, after, "ledger_gc_pause_seconds")),
        "event_loop_lag": summary(window(before, after, "ledger_event_loop_lag_seconds")),
        "jetstream_append": summary(window(before, after, "ledger_store_append_seconds")),
    }
