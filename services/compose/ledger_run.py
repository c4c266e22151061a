"""The whole ledger in one process, in order: embedded servers, the adjudicator, the read side, HTTP, NATS.

Start: the embedded nats-server and PostgreSQL (unless configured), the streams (an admin sets them
up), the adjudicator (`bootstrap`), the read side with its first integrity check, HTTP, and last
the NATS transports. Stop (`stop` set): taking messages ends, HTTP finishes its requests, what was
taken is decided and answered, then the read side, NATS, PostgreSQL and the embedded servers close.
"""
from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Mapping

import structlog

from services.compose.http import HttpServer, ledger_app
from services.compose.process import bootstrap
from services.compose.read_side import start_read_side
from services.runtime.options import RuntimeOptions
from services.runtime.settings import Settings

log = structlog.get_logger(component="ledger.run")

STEP_TIMEOUT = 30.0      # seconds each step of a stop may take before the next goes on


async def _bounded(step: str, closing: Awaitable[None]) -> None:
    """One step of the stop, at most STEP_TIMEOUT s: whatever it waits on (a connection never released, a
    task that does not end), the embedded servers after it still stop cleanly. Everything answered was
    acknowledged by the stream before it was answered, so a step cut short loses nothing; the log names it.
    (A full `make test` once saw `ledger run` still stopping after 60 s, on a step not yet known.)"""
    try:
        await asyncio.wait_for(closing, STEP_TIMEOUT)
    except TimeoutError:
        log.error("stop_step_timed_out", step=step, seconds=STEP_TIMEOUT)


async def serve(settings: Settings, options: RuntimeOptions, tokens: Mapping[str, str], sock: socket.socket,
                stop: asyncio.Event) -> None:
    """Run until `stop` is set (or the HTTP server stops: an error); raises what failed."""
    from services.nats.provision import provision_streams
    from services.runtime.embedded import embedded_servers
    from services.runtime.nats_users import redact_url
    from services.runtime.supervisor import Backoff

    users_existed = settings.nats_users_path.exists()
    backoff = Backoff(initial=options.restart_delay, maximum=max(10.0, options.restart_delay))
    async with embedded_servers(settings, backoff=backoff) as (nats_url, database_url):
        if settings.nats_url is None:
            log.info("nats_users", path=str(settings.nats_users_path.resolve()), generated=not users_existed,
                     users=["platform", "ledger", "admin", "sys"])
        elif settings.nats_admin_url is not None:   # embedded NATS set its streams up at start
            await provision_streams(settings.nats_admin_url, replicas=settings.stream_replicas, feed=options.feed)
        ledger = await bootstrap(settings, nats_url=nats_url, database_url=database_url, options=options)
        http: HttpServer | None = None
        read_side = None
        try:
            read_side, deps = await start_read_side(ledger, database_url, tokens)
            http = HttpServer(ledger_app(deps), sock)
            await http.start()
            await ledger.start_transports()
            url = f"http://{settings.http_host}:{sock.getsockname()[1]}"
            log.info("ready", http=url, nats=redact_url(nats_url), data_dir=str(settings.data_dir.resolve()),
                     embedded_nats=settings.nats_url is None, embedded_postgres=settings.database_url is None)
            users = "" if settings.nats_url else f"  NATS users {settings.nats_users_path}"
            print(f"claims-ledger ready: HTTP {url}  NATS {redact_url(nats_url)}  tokens {settings.tokens_path}"
                  f"{users}", flush=True)
            waiter = asyncio.create_task(stop.wait())
            assert http.task is not None
            await asyncio.wait({waiter, http.task}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if http.task.done():
                http.task.result()
                raise RuntimeError("the HTTP server stopped")
        finally:
            ledger.taking_messages = False
            if http is not None:
                await _bounded("http", http.stop())
            if read_side is not None:
                await _bounded("read side", read_side.close())
            await _bounded("adjudicator", ledger.close())
