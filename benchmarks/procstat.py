"""CPU seconds and peak RSS of other processes, from Linux /proc (0 where /proc is missing)."""
from __future__ import annotations

import os
from pathlib import Path


def _stat(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User + system CPU of `pid`; with `reaped_children`, also of its children that exited and were waited for."""
    fields = _stat(pid)
    if len(fields) < 15:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    out = []
    for entry in entries:
        if entry.isdigit():
            fields = _stat(int(entry))
            if len(fields) > 1 and fields[1] == str(pid):
                out.append(int(entry))
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a server and its children, live or reaped (PostgreSQL: the postmaster and its backends)."""
    return cpu_seconds(pid, reaped_children=True) + sum(cpu_seconds(c, reaped_children=True) for c in children(pid))


def peak_rss_mb(pid: int) -> float:
    """VmHWM (the resident set's high-water mark) of a live process, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0
