"""Who may create or change the ledger's streams: the NATS ``admin`` user, never the services.

Why: the services run as NATS user ``ledger``, which may append and read but
may not create, update, purge or delete a stream (deploy/nats/accounts.conf,
ADR 0009). So the streams LEDGER and PLATFORM_IN are set up here, with an
admin connection: by the embedded server once it is up, by `ledger run` when
``LEDGER_NATS_ADMIN_URL`` is given, or by an operator with
`ledger setup-streams`. The services still run the same ensure functions at
start, through `read_only(js)`: the settings are checked exactly as before, and
what would be a write becomes `StreamSetupNeeded`, naming the stream and what
is missing, instead of a request the server refuses and a timeout.
"""
from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import Any

from nats.js.api import StreamConfig

__all__ = ["StreamSetupNeeded", "provision_streams", "provision_streams_blocking", "read_only"]

HOW = ("the ledger's NATS user may not create or change streams: run `ledger setup-streams` with "
       "LEDGER_NATS_ADMIN_URL (a NATS user with admin rights), or give `ledger run` LEDGER_NATS_ADMIN_URL")


class StreamSetupNeeded(RuntimeError):
    """A stream is missing or differs from the required settings, and this connection may not fix it."""


class _ReadOnlyStreams:
    """A JetStream context whose stream writes raise `StreamSetupNeeded`; everything else passes through."""

    def __init__(self, js: Any):
        self._js = js

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)

    async def add_stream(self, config: StreamConfig | None = None, **params: Any) -> Any:
        name = config.name if config is not None else params.get("name")
        raise StreamSetupNeeded(f"stream {name} does not exist; {HOW}")

    async def update_stream(self, config: StreamConfig | None = None, **params: Any) -> Any:
        assert config is not None and config.name
        current = (await self._js.stream_info(config.name)).config
        differ = sorted(f.name for f in dataclasses.fields(StreamConfig)
                        if getattr(current, f.name) != getattr(config, f.name))
        raise StreamSetupNeeded(f"stream {config.name} differs from the required settings in "
                                f"{', '.join(differ) or 'nothing visible'}; {HOW}")


def read_only(js: Any) -> Any:
    """``js`` for the services: reads and consumers as usual, stream writes refused up front."""
    return _ReadOnlyStreams(js)


async def provision_streams(admin_url: str, *, replicas: int | None = None, feed: Any = None) -> None:
    """Create streams LEDGER and PLATFORM_IN and the LEDGER_INTEGRITY bucket, or bring them to the
    required settings (admin rights)."""
    from services.integrity.state import bucket
    from services.nats.connect import connect_command
    from services.nats.feed_config import FeedConfig
    from services.nats.streams import ensure_inbound_stream, ensure_ledger_stream

    nc = await connect_command(admin_url, "claims-ledger-setup", connect_timeout=5)   # a cluster: URLs as NATS_URL
    try:
        js = nc.jetstream()
        await ensure_ledger_stream(js, replicas=replicas)
        await ensure_inbound_stream(js, feed or FeedConfig())
        await bucket(js, replicas)         # the loss-detection record (ADR 0010): a stream, so the admin's
    finally:
        await nc.close()


def provision_streams_blocking(admin_url: str, **kwargs: Any) -> None:
    """`provision_streams` from synchronous code, whether or not this thread runs an event loop."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(provision_streams(admin_url, **kwargs))
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="provision-streams")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
