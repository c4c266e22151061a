"""What the embedded servers need to know about OS processes and their logs."""

from __future__ import annotations

import os
from pathlib import Path


def tail(path: Path, start: int = 0, limit: int = 4000) -> str:
    """The last ``limit`` characters of a log file written after offset ``start``."""
    try:
        with path.open("rb") as fh:
            fh.seek(start)
            data = fh.read()
    except OSError:
        return "<no log>"
    return data[-limit:].decode("utf-8", "replace").strip() or "<empty>"


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_name(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        pass
    try:
        import psutil  # installed with pgserver

        return psutil.Process(pid).name()
    except Exception:
        return None
