"""How the feed consumes ``platform.in.>``: the durable consumer's settings and each process's pull limits."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from events.subjects import FEED_DURABLE, PLATFORM_IN, PLATFORM_IN_SUBJECTS


@dataclass(frozen=True)
class FeedConfig:
    stream: str = PLATFORM_IN
    subjects: tuple[str, ...] = PLATFORM_IN_SUBJECTS
    durable: str = FEED_DURABLE
    ack_wait: float = 30.0          # seconds before an unacked message is delivered again
    max_deliver: int = 5            # tries before a crashing message is dead-lettered
    max_ack_pending: int = 20_000   # across all replicas
    max_inflight: int = 1024        # per process: delivered or requested, not yet finished
    batch: int = 256                # messages per pull request
    expires: float = 30.0           # pull request lifetime
    heartbeat: float = 5.0          # idle heartbeat of a pull request
    nak_delay: float = 1.0          # first retry delay; doubles per try, at most 30 s
    hold_retry: float = 2.0         # while the ledger is held: seconds between tries (kept in progress)
    replicas: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> FeedConfig:
        def num(name: str, default: float, kind: type = float) -> Any:
            raw = (env.get(name) or "").strip()
            if not raw:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"{name} must be a number, got {raw!r}") from None
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {raw!r}")
            return value
        return cls(ack_wait=num("LEDGER_FEED_ACK_WAIT", cls.ack_wait),
                   max_deliver=num("LEDGER_FEED_MAX_DELIVER", cls.max_deliver, int),
                   max_inflight=num("LEDGER_FEED_MAX_INFLIGHT", cls.max_inflight, int),
                   nak_delay=num("LEDGER_FEED_NAK_DELAY", cls.nak_delay),
                   replicas=num("LEDGER_FEED_REPLICAS", cls.replicas, int))
