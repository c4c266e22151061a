"""Embedded PostgreSQL (the `pgserver` wheel) for `ledger run` and the test session.

Data lives in ``<data_dir>/pg`` (PGDATA); see `services.runtime.embedded` for
the behaviours others rely on (unix socket URL, shared handles, root user).
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from services.runtime.processes import alive as _alive
from services.runtime.processes import exit_status as _exit_status
from services.runtime.processes import tail as _tail


def _import_pgserver() -> Any:
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers); harmless.
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError as exc:
        raise RuntimeError(
            f"embedded PostgreSQL needs the pgserver wheel ({exc}); install it or set DATABASE_URL"
        ) from exc
    return pgserver


def _forget_dead_handles(pgserver: Any, pgdata: Path) -> None:
    """Drop pids of dead processes from pgserver's handle list, so the last live handle stops postgres."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    with pgserver.PostgresServer._lock:
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            pids = []
        live = [p for p in pids if isinstance(p, int) and _alive(p)]
        if live != pids:
            handles.write_text(json.dumps(live))


@dataclass
class EmbeddedPostgres:
    """A running embedded PostgreSQL; ``url`` works with asyncpg (unix socket)."""

    url: str
    data_dir: Path
    server: Any = field(repr=False)
    name: str = "postgres"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid (first line of ``PGDATA/postmaster.pid`` when it started)."""
        info = self.server._postmaster_info
        return info.pid if info is not None else None

    def exit_status(self) -> int | None:
        pid = self.pid
        return None if pid is None else _exit_status(pid)

    def restart(self, timeout: float = 30.0) -> None:
        """Start postgres again on the same PGDATA and socket, once the dead postmaster is gone.

        Not our child: until its parent (init) reaps it, a killed postmaster is a zombie whose
        pid still "exists", and postgres refuses to start over the lock file naming it (it
        also refuses while an orphaned backend still holds the old shared memory). Both
        clear by themselves within seconds; the supervisor's backoff retries until then.
        """
        pid = self.pid
        deadline = time.monotonic() + timeout
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid is not None and _alive(pid):
            raise RuntimeError(f"the dead postmaster (pid {pid}) is not reaped yet; postgres would not start")
        pgserver = _import_pgserver()
        with pgserver.PostgresServer._lock:
            self.server.ensure_postgres_running()
        self.url = _socket_url(self.server)

    def stop(self) -> None:
        """Stop postgres (``pg_ctl stop -w``) unless another live process still holds a handle."""
        self.server.cleanup()


def start_postgres(data_dir: Path, *, delete_on_stop: bool = False) -> EmbeddedPostgres:
    """Start (initdb on first use) PostgreSQL with PGDATA ``<data_dir>/pg``.

    ``delete_on_stop`` removes PGDATA at ``stop()`` (throwaway servers only).
    Raises ``RuntimeError`` with the postgres log tail if it cannot start.
    """
    pgserver = _import_pgserver()
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pg"
    if any(ch.isspace() for ch in str(pgdata)):
        # pgserver passes the socket dir to postgres unquoted (pgserver 0.1.4).
        raise RuntimeError(
            f"embedded PostgreSQL cannot use a data path with whitespace ({pgdata}); "
            "set LEDGER_DATA_DIR to a path without spaces, or set DATABASE_URL"
        )
    pgdata.mkdir(exist_ok=True)
    _forget_dead_handles(pgserver, pgdata)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="delete" if delete_on_stop else "stop")
    except Exception as exc:
        raise RuntimeError(
            f"embedded PostgreSQL failed to start in {pgdata}: {exc}; log tail:\n{_tail(pgdata / 'log')}"
        ) from exc
    return EmbeddedPostgres(url=_socket_url(server), data_dir=pgdata, server=server)


def _socket_url(server: Any) -> str:
    """``postgresql://postgres@/postgres?host=<socket dir>``, the path percent-encoded."""
    info = server.get_postmaster_info()
    if info.socket_dir is None:  # TCP (pgserver does this on Windows only)
        return str(server.get_uri())
    return f"postgresql://postgres@/postgres?host={quote(str(info.socket_dir), safe='/')}&port={info.port}"
