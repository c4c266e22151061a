"""Structured logs (structlog, JSON lines on stderr) and Prometheus metrics for the running ledger.

Logs never carry a ``psn_no``: name a person by ``person_key`` (the HMAC of
services/runtime/secrets.py). Nothing is logged per successful decision — the
hot path only bumps counters; rejections are dead letters in the stream and
logged at debug level.

Each `Metrics` owns its registry (no global state), so tests and several apps
in one process do not collide; `GET /metrics` renders it.
"""
from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Iterable

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "configure_logging"]

_DECISION_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_PAUSE_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_BATCH_BUCKETS = (0, 16, 32, 64, 128, 256, 499)


def configure_logging(level: str | None = None) -> None:
    """JSON lines on stderr at LEDGER_LOG_LEVEL (default info); stdlib loggers (uvicorn, nats) go the same way."""
    name = (level or os.environ.get("LEDGER_LOG_LEVEL") or "info").upper()
    numeric = getattr(logging, name, logging.INFO)
    processors = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*processors, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processor=structlog.processors.JSONRenderer(), foreign_pre_chain=processors))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for noisy in ("pgserver", "httpx", "asyncio"):      # pgserver logs every command it runs at info
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))


class Metrics:
    """Counters and histograms of the decision path; cheap enough to call per message."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter("ledger_messages_total", "Inbound messages decided, by type, result and transport",
                                ["msg_type", "result", "transport"], registry=r)
        self.decision_seconds = Histogram("ledger_decision_seconds",
                                          "Time from receiving a message to its stored decision",
                                          ["transport"], buckets=_DECISION_BUCKETS, registry=r)
        self.conflicts = Counter("ledger_conflicts_total",
                                 "Appends refused by the expected-last-subject-sequence guard (decided again)",
                                 registry=r)
        self.errors = Counter("ledger_handler_errors_total", "Messages whose handling raised, by transport",
                              ["transport"], registry=r)
        self.dead_letters = Counter("ledger_dead_letters_total", "Messages rejected and kept on ledger.ref.rejected",
                                    ["code"], registry=r)
        self.redeliveries = Counter("ledger_feed_naks_total", "platform.in messages nak'd for a later retry",
                                    registry=r)
        self.person_loads = Counter("ledger_person_loads_total", "Persons rebuilt from their stream subject",
                                    registry=r)
        self.person_load_seconds = Histogram("ledger_person_load_seconds", "Time to rebuild one person",
                                             buckets=_DECISION_BUCKETS, registry=r)
        self.inflight = Gauge("ledger_inflight_messages", "Messages being decided now", registry=r)
        self.rpc_inflight = Gauge("ledger_rpc_inflight", "Requests taken on ledger.rpc.* and not yet answered "
                                  "(at most LEDGER_RPC_MAX_INFLIGHT)", registry=r)
        self.rpc_shed = Counter("ledger_rpc_shed_total", "Requests refused as overloaded (answered unavailable, "
                                "or dropped past the shed queue)", registry=r)
        # What gc.freeze() (services/compose/ledger.py settle_gc) moved out of the collector's reach for good: a count that
        # keeps rising under a steady load is garbage frozen in reference cycles (benchmarks/soak.py).
        self.gc_frozen = Gauge("ledger_gc_frozen_objects", "Objects in the permanent generation (gc.freeze)",
                               registry=r)
        self.gc_frozen.set_function(gc.get_freeze_count)
        # Where a slow answer's time went (issue 14: the tail at 500 requests/s): services/pauses.py
        self.gc_pause_seconds = Histogram("ledger_gc_pause_seconds", "Cyclic garbage collections, by generation",
                                          ["generation"], buckets=_PAUSE_BUCKETS, registry=r)
        self.loop_lag_seconds = Histogram("ledger_event_loop_lag_seconds",
                                          "How late the event loop ran a timer (work that held it meanwhile)",
                                          buckets=_PAUSE_BUCKETS, registry=r)
        self.append_seconds = Histogram("ledger_store_append_seconds",
                                        "One JetStream append: publish to acknowledgement (fsync included)",
                                        buckets=_DECISION_BUCKETS, registry=r)
        # Group commit (ADR 0016): how full the batches are, and how many members a batch could not keep
        # (conflict, refused or failed batch: decided again one by one) — a rising share is contention.
        self.batch_members = Histogram("ledger_group_commit_batch_members", "Commits stored in one atomic batch",
                                       ["transport"], buckets=_BATCH_BUCKETS, registry=r)
        self.batch_fell_back = Counter("ledger_group_commit_fell_back_total",
                                       "Batch members decided again one by one", ["transport"], registry=r)
        self.stream_loss = Gauge("ledger_stream_loss",
                                 "What the read side found the stream lost or holds unsealed, by finding (ADR 0010)",
                                 ["finding"], registry=r)
        self.decisions_held = Gauge("ledger_decisions_held",
                                    "Holds this adjudicator decides nothing under, by finding (ADR 0010)",
                                    ["finding"], registry=r)
        self._children: dict[tuple[str, str, str], Counter] = {}
        self._timers: dict[str, Histogram] = {}

    def observe(self, transport: str, results: Iterable[object], seconds: float) -> None:
        timer = self._timers.get(transport)
        if timer is None:
            timer = self._timers[transport] = self.decision_seconds.labels(transport)
        timer.observe(seconds)
        for result in results:
            tag = result.__struct_config__.tag  # type: ignore[attr-defined]
            key = (tag, getattr(result, "result", "") or "", transport)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self.messages.labels(*key)
            child.inc()
            reason = getattr(result, "reason", None)
            if key[1] == "rejected" and reason is not None:
                self.dead_letters.labels(reason.code).inc()

    def conflict(self) -> None:
        self.conflicts.inc()

    def batch_stored(self, transport: str, members: int, fell_back: int) -> None:
        self.batch_members.labels(transport).observe(members)     # 0: a batch refused or failed whole
        if fell_back:
            self.batch_fell_back.labels(transport).inc(fell_back)

    def person_loaded(self, commits: int, seconds: float) -> None:
        self.person_loads.inc()
        self.person_load_seconds.observe(seconds)

    def loss_found(self, findings: Iterable[object]) -> None:
        _set_counts(self.stream_loss, findings)

    def held(self, findings: Iterable[object]) -> None:
        _set_counts(self.decisions_held, findings)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _set_counts(gauge: Gauge, findings: Iterable[object]) -> None:
    """One series per finding code, counting the current findings; codes no longer found go to 0."""
    from services.integrity.findings import ALL_CODES
    counts = dict.fromkeys(ALL_CODES, 0)
    for finding in findings:
        counts[finding.code] = counts.get(finding.code, 0) + 1   # type: ignore[attr-defined]
    for code, n in counts.items():
        gauge.labels(code).set(n)
