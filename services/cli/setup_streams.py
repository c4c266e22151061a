"""`ledger setup-streams`: create or update the streams LEDGER and PLATFORM_IN as a NATS admin.

For clusters where the ledger's services run with the ``ledger`` user only
(compose, k8s): an operator, or a one-shot job, runs this once before the
services start and again after an upgrade that changes the stream settings.
The admin URL comes from LEDGER_NATS_ADMIN_URL (``nats://admin:<password>@host:4222``).
"""
from __future__ import annotations

import asyncio
import sys

from services.runtime.nats_users import redact_url


def setup_streams_cmd() -> int:
    from services.nats.feed_config import FeedConfig
    from services.nats.provision import provision_streams
    from services.runtime.settings import load_settings

    try:
        settings = load_settings()
        feed = FeedConfig.from_env()
    except ValueError as exc:
        print(f"ledger setup-streams: {exc}", file=sys.stderr)
        return 2
    if settings.nats_admin_url is None:
        print("ledger setup-streams: set LEDGER_NATS_ADMIN_URL (a NATS user with admin rights)", file=sys.stderr)
        return 2
    try:
        asyncio.run(provision_streams(settings.nats_admin_url, replicas=settings.stream_replicas, feed=feed))
    except Exception as exc:
        print(f"ledger setup-streams: {redact_url(settings.nats_admin_url)}: {exc!r}", file=sys.stderr)
        return 1
    print(f"streams LEDGER and {feed.stream} are set up on {redact_url(settings.nats_admin_url)}")
    return 0
