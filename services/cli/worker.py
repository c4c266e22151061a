"""`python -m services.cli.worker`: one more adjudicator replica, NATS transports only.

Takes ``ledger.rpc.*`` requests (queue group) and pulls ``platform.in.>`` from
the shared durable consumer, like the adjudicator inside `ledger run`; no HTTP,
no PostgreSQL. Needs ``NATS_URL`` (user ``ledger``, password in the URL), and the same person-key secret as the other
replicas (``LEDGER_PERSON_KEY_SECRET``, or the same ``LEDGER_DATA_DIR``).
``LEDGER_METRICS_PORT`` serves its Prometheus metrics on 127.0.0.1.
Prints ``ready`` on stdout once it takes messages; SIGTERM/SIGINT stop it
after finishing what it took.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys

import structlog

from services.observability import configure_logging

log = structlog.get_logger(component="ledger.worker")


async def _run() -> int:
    from services.compose.process import bootstrap
    from services.runtime.options import RuntimeOptions
    from services.runtime.nats_users import redact_url
    from services.runtime.settings import load_settings

    settings = load_settings()
    if settings.nats_url is None:
        print("adjudicator worker: set NATS_URL", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ledger = await bootstrap(settings, options=RuntimeOptions.from_env(), connect_db=False)
    metrics_port = os.environ.get("LEDGER_METRICS_PORT", "").strip()
    if metrics_port:                   # Prometheus text on 127.0.0.1:<port>/ (the worker has no HTTP API)
        from prometheus_client import start_http_server
        start_http_server(int(metrics_port), addr="127.0.0.1", registry=ledger.metrics.registry)
    try:
        await ledger.start_transports()
        log.info("worker_ready", nats=redact_url(settings.nats_url))
        print("ready", flush=True)
        await stop.wait()
    finally:
        await ledger.close()
    return 0


def main() -> int:
    configure_logging()
    try:
        return asyncio.run(_run())
    except ValueError as exc:
        print(f"adjudicator worker: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
