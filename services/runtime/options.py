"""Tuning a ledger process reads from the environment besides `Settings`: packs, caches, timeouts, the
collector, whether `ledger run` projects, the feed."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.adjudicator.group_commit import GroupCommitConfig
from services.nats.feed_config import FeedConfig
from services.policy.pack import DEFAULT_PACK_DIR

YOUNG_THRESHOLD = 50_000      # see services/compose/ledger.py settle_gc


@dataclass(frozen=True)
class RuntimeOptions:
    """Tuning the runtime reads from the environment besides `Settings` (all optional)."""
    pack_dir: Path = DEFAULT_PACK_DIR          # LEDGER_PACK_DIR
    person_cache: int = 100_000                # LEDGER_PERSON_CACHE: persons kept in memory per process
    gc_young: int = YOUNG_THRESHOLD            # LEDGER_GC_YOUNG: allocations between young collections
                                               # (gc.set_threshold's first; CPython's own is 700)
    publish_timeout: float = 5.0               # LEDGER_PUBLISH_TIMEOUT: seconds to wait for a JetStream ack
    rpc_max_inflight: int = 1024               # LEDGER_RPC_MAX_INFLIGHT: requests decided at once; more are shed
    restart_delay: float = 0.1                 # LEDGER_RESTART_DELAY: seconds before restarting a dead embedded
                                               # server (doubles per failed try, at most 10 s)
    projector: bool = True                     # LEDGER_PROJECTOR=off: `ledger run` serves the read models but
                                               # does not project them (`ledger project` processes do)
    integrity_poll: float = 2.0                # LEDGER_INTEGRITY_POLL: seconds between the guard's checks (ADR 0010)
    feed: FeedConfig = field(default_factory=FeedConfig)
    group_commit: GroupCommitConfig = field(default_factory=GroupCommitConfig)   # LEDGER_GROUP_COMMIT*, ADR 0016

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RuntimeOptions:
        pack_dir = (env.get("LEDGER_PACK_DIR") or "").strip()
        cache = (env.get("LEDGER_PERSON_CACHE") or "").strip()
        timeout = (env.get("LEDGER_PUBLISH_TIMEOUT") or "").strip()
        young = (env.get("LEDGER_GC_YOUNG") or "").strip()
        restart = (env.get("LEDGER_RESTART_DELAY") or "").strip()
        rpc_inflight = (env.get("LEDGER_RPC_MAX_INFLIGHT") or "").strip()
        projector = (env.get("LEDGER_PROJECTOR") or "on").strip().lower()
        if projector not in ("on", "off"):
            raise ValueError(f"LEDGER_PROJECTOR must be on or off, got {projector!r}")
        poll = (env.get("LEDGER_INTEGRITY_POLL") or "").strip()
        try:
            rpc_max_inflight = int(rpc_inflight) if rpc_inflight else cls.rpc_max_inflight
            person_cache = int(cache) if cache else cls.person_cache
            publish_timeout = float(timeout) if timeout else cls.publish_timeout
            gc_young = int(young) if young else cls.gc_young
            restart_delay = float(restart) if restart else cls.restart_delay
            integrity_poll = float(poll) if poll else cls.integrity_poll
        except ValueError:
            raise ValueError("LEDGER_PERSON_CACHE, LEDGER_RPC_MAX_INFLIGHT and LEDGER_GC_YOUNG must be integers, "
                             "LEDGER_PUBLISH_TIMEOUT, LEDGER_RESTART_DELAY and LEDGER_INTEGRITY_POLL numbers") from None
        if (min(person_cache, rpc_max_inflight, gc_young) < 1
                or min(publish_timeout, restart_delay, integrity_poll) <= 0):
            raise ValueError("LEDGER_PERSON_CACHE, LEDGER_RPC_MAX_INFLIGHT, LEDGER_GC_YOUNG, LEDGER_PUBLISH_TIMEOUT, "
                             "LEDGER_RESTART_DELAY and LEDGER_INTEGRITY_POLL must be positive")
        return cls(pack_dir=Path(pack_dir).expanduser() if pack_dir else DEFAULT_PACK_DIR,
                   person_cache=person_cache, publish_timeout=publish_timeout,
                   gc_young=gc_young, restart_delay=restart_delay,
                   rpc_max_inflight=rpc_max_inflight, integrity_poll=integrity_poll, projector=projector == "on",
                   feed=FeedConfig.from_env(env), group_commit=GroupCommitConfig.from_env(env))
