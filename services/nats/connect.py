"""The one way the ledger connects to NATS: servers, reconnects, pings and logging, for every process.

A long-running process (`ledger run`, the worker) reconnects for ever and pings often; a command
(`ledger verify`, stream set-up: `connect_command`) gives up after a few attempts and says so, and
keeps nats-py's slow pings, since a long read may keep its event loop busy for seconds.
"""
from __future__ import annotations

from typing import Any

import structlog

log = structlog.get_logger(component="ledger.bootstrap")

PING_INTERVAL = 2.0     # seconds: a paused or partitioned server is noticed in ~6 s, not nats-py's 4 min (ADR 0012)
COMMAND_PING_INTERVAL = 120.0                  # nats-py's default


def servers(url: str) -> list[str]:
    """NATS_URL's servers: a cluster lists one URL per node, comma-separated."""
    return [u.strip() for u in url.split(",") if u.strip()]


async def connect(url: str, name: str = "claims-ledger", *, attempts: int = -1, connect_timeout: float = 5,
                  ping_interval: float = PING_INTERVAL, **auth: Any) -> Any:
    """A nats-py client on `url` (comma-separated for a cluster), reconnecting `attempts` times (-1: for
    ever); ``auth`` adds nats-py credentials beside those in the URL (``nkeys_seed``)."""
    import nats

    async def on_error(exc: Exception) -> None:
        log.warning("nats_error", error=repr(exc))

    async def on_disconnect() -> None:
        log.info("nats_disconnected")

    async def on_reconnect() -> None:
        log.info("nats_reconnected")

    # Ping every 2 s, stale after 2 unanswered: a server that is paused (SIGSTOP, a VM freeze) keeps
    # its socket open, and with nats-py's default (120 s) the ledger would wait on it for minutes
    # instead of moving to another node of the cluster.
    return await nats.connect(
        servers=servers(url), name=name, max_reconnect_attempts=attempts,
        reconnect_time_wait=1, connect_timeout=connect_timeout, pending_size=64 * 1024 * 1024,
        ping_interval=ping_interval, max_outstanding_pings=2,
        error_cb=on_error, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect, **auth)


async def connect_command(url: str, name: str = "claims-ledger-cli", *, connect_timeout: float = 3,
                          **auth: Any) -> Any:
    """`connect` for a command that runs once: three attempts, then the error."""
    return await connect(url, name, attempts=3, connect_timeout=connect_timeout, ping_interval=COMMAND_PING_INTERVAL,
                         **auth)
