"""`ledger run`: the whole ledger in one process — embedded servers unless configured, NATS transports, HTTP.

With no ``NATS_URL``/``DATABASE_URL`` it starts an embedded nats-server
(JetStream under ``<data dir>/nats``) and PostgreSQL (``<data dir>/pg``),
then, in this one asyncio process: the adjudicator (services/bootstrap.py),
request/reply on ``ledger.rpc.*``, the durable ``platform.in.>`` feed, and the
HTTP API on ``LEDGER_HTTP_HOST:LEDGER_HTTP_PORT`` (default 127.0.0.1:8000).

SIGINT/SIGTERM stop it in order: stop taking HTTP requests and NATS messages,
finish (decide, answer, ack) what was taken, close NATS and PostgreSQL pools,
stop the embedded servers. A second signal exits at once. Exit 0 after a clean
stop, 1 if something failed, 2 for bad configuration.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import structlog
import uvicorn

from services.observability import configure_logging
from services.runtime.settings import Settings, load_settings

log = structlog.get_logger(component="ledger.run")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `ledger run` owns SIGINT/SIGTERM and stops it in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run_ledger() -> int:
    try:
        from services.bootstrap import RuntimeOptions

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


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot listen for HTTP on {host}:{port} ({exc.strerror}); "
                           "set LEDGER_HTTP_PORT to a free port") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def start_read_side(ledger: Any, database_url: str, tokens: Mapping[str, str],
                          **monitor: Any) -> tuple[Any, Any]:
    """The read side next to `ledger`, and what the HTTP API is given: migrations, a first integrity
    check — told to the adjudicator before it takes a message (ADR 0010) — then the projector and
    the monitor in the background."""
    from projections.service import ReadSide
    from services.api.app import ApiDeps
    settings = ledger.settings
    read_side = await ReadSide(database_url, ledger.js, ledger.seal_key, metrics=ledger.metrics,
                               replicas=settings.stream_replicas, project=ledger.options.projector,
                               **monitor).start()
    if ledger.guard is not None:
        await ledger.guard.refresh()
    from services.ingest import oversize

    def submit(raw: bytes, source: str, transport: str) -> Any:
        # What NATS could not carry is dead-lettered as message_too_large, as on NATS.
        return oversize.decide(ledger.adjudicator, raw, source, transport, ledger.nc.max_payload)

    def dead_letter(raw: bytes, source: str, code: str, message: str, transport: str) -> Any:
        return oversize.dead_letter(ledger.adjudicator, raw, source, code, message, transport)

    deps = ApiDeps(submit=submit, dead_letter=dead_letter, tokens=tokens, metrics=ledger.metrics,
                   publish_extra=ledger.publish_extra, taking_messages=lambda: ledger.taking_messages,
                   nc=ledger.nc, js=ledger.js, db=ledger.db, person_key=ledger.person_key, settings=settings,
                   ready_checks=[read_side.lag_check, read_side.integrity_check], seal_key=ledger.seal_key,
                   integrity=read_side.monitor)
    return read_side, deps


async def _run(settings: Settings, options: object) -> int:
    from services.api.app import create_app
    from services.bootstrap import bootstrap
    from services.runtime.embedded import embedded_servers
    from services.runtime.nats_users import redact_url
    from services.runtime.provision import provision_streams
    from services.runtime.supervisor import Backoff
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
        sock = _bind(settings.http_host, settings.http_port)
    except RuntimeError as exc:
        log.error("failed", error=str(exc))
        return 1
    http_port = sock.getsockname()[1]
    status = 0
    users_existed = settings.nats_users_path.exists()
    try:
        backoff = Backoff(initial=options.restart_delay, maximum=max(10.0, options.restart_delay))  # type: ignore[attr-defined]
        async with embedded_servers(settings, backoff=backoff) as (nats_url, database_url):
            if settings.nats_url is None:
                log.info("nats_users", path=str(settings.nats_users_path.resolve()), generated=not users_existed,
                         users=["platform", "ledger", "admin", "sys"])
            elif settings.nats_admin_url is not None:   # embedded NATS set its streams up at start
                await provision_streams(settings.nats_admin_url, replicas=settings.stream_replicas,
                                        feed=options.feed)  # type: ignore[attr-defined]
            ledger = await bootstrap(settings, nats_url=nats_url, database_url=database_url,
                                     options=options)  # type: ignore[arg-type]
            server: _Server | None = None
            http_task: asyncio.Task | None = None
            read_side = None
            try:
                from services.api.supervision import read_routers
                from services.console.plugin import ConsolePlugin
                read_side, deps = await start_read_side(ledger, database_url, tokens)
                config = uvicorn.Config(create_app(deps, routers=read_routers(), plugins=[ConsolePlugin(deps)]), log_config=None, access_log=False, lifespan="on",
                                        server_header=False, timeout_graceful_shutdown=10)
                server = _Server(config)
                http_task = asyncio.create_task(server.serve(sockets=[sock]))
                while not server.started:
                    if http_task.done():
                        http_task.result()
                        raise RuntimeError("the HTTP server stopped during start")
                    await asyncio.sleep(0.02)
                await ledger.start_transports()
                url = f"http://{settings.http_host}:{http_port}"
                log.info("ready", http=url, nats=redact_url(nats_url), data_dir=str(settings.data_dir.resolve()),
                         embedded_nats=settings.nats_url is None, embedded_postgres=settings.database_url is None)
                users = "" if settings.nats_url else f"  NATS users {settings.nats_users_path}"
                print(f"claims-ledger ready: HTTP {url}  NATS {redact_url(nats_url)}  tokens {settings.tokens_path}"
                      f"{users}", flush=True)
                waiter = asyncio.create_task(stop.wait())
                await asyncio.wait({waiter, http_task}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if http_task.done():
                    http_task.result()
                    raise RuntimeError("the HTTP server stopped")
            finally:
                ledger.taking_messages = False
                if server is not None and http_task is not None:
                    server.should_exit = True
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(http_task, timeout=15)
                if read_side is not None:
                    await read_side.close()
                await ledger.close()
    except Exception as exc:
        log.error("failed", error=str(exc), exc_info=True)
        status = 1
    finally:
        sock.close()
    log.info("stopped", status=status)
    return status
