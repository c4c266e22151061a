"""The HTTP side of `ledger run`: the app over `ApiDeps` and a uvicorn server on a socket bound up front."""
from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from services.api.deps import ApiDeps


def ledger_app(deps: ApiDeps) -> Any:
    """The whole HTTP API of a ledger: intake, reads, supervision and the console."""
    from services.api.app import create_app
    from services.api.supervision import read_routers
    from services.console.plugin import ConsolePlugin
    return create_app(deps, routers=read_routers(), plugins=[ConsolePlugin(deps)])


def bind(host: str, port: int) -> socket.socket:
    """Listen before anything starts, so a port in use fails the start at once (port 0: any free one)."""
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


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `ledger run` owns SIGINT/SIGTERM and stops it in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    def __init__(self, app: Any, sock: socket.socket):
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", server_header=False,
                                timeout_graceful_shutdown=10)
        self._server = _Server(config)
        self._sock = sock
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        """Serve, and return once the server takes requests (raises if it stopped first)."""
        self.task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self.task.done():
                self.task.result()
                raise RuntimeError("the HTTP server stopped during start")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Finish the requests in flight (at most 15 s) and stop."""
        if self.task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, timeout=15)
