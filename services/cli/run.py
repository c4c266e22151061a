"""`ledger run`: the whole ledger in one process — embedded servers unless configured, NATS transports, HTTP.

With no ``NATS_URL``/``DATABASE_URL`` it starts an embedded nats-server
(JetStream under ``<data dir>/nats``) and PostgreSQL (``<data dir>/pg``),
then, in this one asyncio process: the adjudicator, request/reply on
``ledger.rpc.*``, the durable ``platform.in.>`` feed, and the HTTP API on
``LEDGER_HTTP_HOST:LEDGER_HTTP_PORT`` (default 127.0.0.1:8000). The parts are
wired in services/compose/ (ledger_run.py); this module owns the command:
settings, tokens, the socket, signals and the exit code.

SIGINT/SIGTERM stop it in order: stop taking HTTP requests and NATS messages,
finish (decide, answer, ack) what was taken, close NATS and PostgreSQL pools,
stop the embedded servers. A second signal exits at once. Exit 0 after a clean
stop, 1 if something failed, 2 for bad configuration.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys

import structlog

from services.observability import configure_logging
from services.runtime.options import RuntimeOptions
from services.runtime.settings import Settings, load_settings

log = structlog.get_logger(component="ledger.run")


def run_ledger() -> int:
    try:
        settings = load_settings()
        options = RuntimeOptions.from_env()
    except ValueError as exc:
        print(f"ledger run: {exc}", file=sys.stderr)
        return 2
    configure_logging()
    try:
        return asyncio.run(_run(settings, options))
    except KeyboardInterrupt:
        return 130


async def _run(settings: Settings, options: RuntimeOptions) -> int:
    from services.compose.http import bind
    from services.compose.ledger_run import serve
    from services.runtime.secrets import role_tokens

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("forced_exit", signal=sig.name)
            os._exit(1)
        log.info("stopping", signal=sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    tokens_existed = settings.tokens_path.exists()
    try:
        tokens = role_tokens(settings)
    except (OSError, ValueError) as exc:
        log.error("tokens_unavailable", error=str(exc))
        return 2
    if len(settings.explicit_tokens) < 3:
        log.info("tokens", path=str(settings.tokens_path.resolve()),
                 generated=not tokens_existed, roles=sorted(tokens))

    try:
        sock = bind(settings.http_host, settings.http_port)
    except RuntimeError as exc:
        log.error("failed", error=str(exc))
        return 1
    status = 0
    try:
        await serve(settings, options, tokens, sock, stop)
    except Exception as exc:
        log.error("failed", error=str(exc), exc_info=True)
        status = 1
    finally:
        sock.close()
    log.info("stopped", status=status)
    return status
