"""What the HTTP layer is given: typed dependencies, built by the composition root (services/compose/).

Every route handler asks for ``deps: ApiDeps`` (Litestar `Provide` of the one instance). Nothing
here does work: the caller owns every connection in it.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
import asyncpg
from nats.aio.client import Client
from nats.js import JetStreamContext

from events.results import Outbound
from events.subjects import STREAM
from services.integrity.monitor import IntegrityMonitor
from services.observability import Metrics
from services.policy.pack import PackSet
from services.runtime.settings import Settings
from services.runtime.signing import SigningKey

# Imported at run time, not under TYPE_CHECKING: Litestar's signature model hands `deps: ApiDeps` to
# msgspec, which resolves these annotations (and passes the one instance through unchanged).

__all__ = ["ApiDeps", "DeadLetter", "ReadyCheck", "Submit"]

ReadyCheck = Callable[[], Awaitable[tuple[str, bool, str]]]
Submit = Callable[[bytes, str, str], Awaitable[list[Outbound]]]                  # (raw, source, transport)
DeadLetter = Callable[[bytes, str, str, str, str], Awaitable[list[Outbound]]]    # (raw, source, code, message,
                                                                                 #  transport)
LAG_TTL = 0.1        # seconds a read of the stream's head is reused for the lag every read answers with


@dataclass
class ApiDeps:
    submit: Submit | None                          # the one decision path; None: this server takes no messages
    tokens: Mapping[str, str]                      # role -> bearer token
    metrics: Metrics = field(default_factory=Metrics)
    publish_extra: Callable[[list[Outbound]], Awaitable[None]] | None = None   # adjustments -> ledger.out
    dead_letter: DeadLetter | None = None          # a body too large to read whole (Adjudicator.dead_letter)
    taking_messages: Callable[[], bool] = lambda: True
    ready_checks: list[ReadyCheck] = field(default_factory=list)
    nc: Client | None = None
    js: JetStreamContext | None = None
    db: asyncpg.Pool | None = None
    person_key: Callable[[str], str] | None = None  # subject key of a person; never log a psn_no
    settings: Settings | None = None
    seal_key: bytes | None = None                  # to verify commits' seals (ADR 0010)
    integrity: IntegrityMonitor | None = None      # the read side's monitor, if this process runs one
    stream: str = STREAM                           # the stream read for lag, audits and digests
    projection_lag_ttl: float = LAG_TTL
    pack_archive: Path | None = None               # pack sets audits may name; default: the settings'
    packs: PackSet | None = None                   # packs the console offers for what-ifs; default: shipped
    signing_key: SigningKey | None = None          # the digest key, read from the data dir on first use
