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


def exit_status(pid: int) -> int | None:
    """None while ``pid`` runs; else its exit code (negative: killed by that signal), -1 if unknown.

    For a process that is not our child (a daemonised postmaster): a zombie is
    dead although ``kill(pid, 0)`` still succeeds, and its wait status is in
    field 52 of ``/proc/<pid>/stat`` until its parent reaps it.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return -1
    except OSError:
        return None if alive(pid) else -1
    fields = stat[stat.rindex(")") + 2:].split()   # after "pid (comm) ": state is field 3
    if fields[0] not in ("Z", "X"):
        return None
    try:
        status = int(fields[49])                    # field 52: exit_code, as waitpid(2) reports it
    except (IndexError, ValueError):
        return -1
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
