"""The faults `make chaos` injects, each a coroutine that does its harm, waits for the ledger to recover
(bounded) and says what it saw.

Processes are the scenario's own (benchmarks/chaos/stack.py). Where a real
deployment has an orchestrator that starts a dead process again (a killed
worker or projector), the fault does it after a few seconds; where the ledger
restarts its own servers (`ledger run`'s supervisor: nats-server, PostgreSQL)
the fault only waits and watches.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import httpx

from benchmarks.chaos.stack import Stack
from services.runtime.processes import alive

PAUSE_SECONDS = 10.0
RECOVERY_TIMEOUT = 90.0


@dataclass
class FaultRecord:
    name: str
    target: str = ""
    at: float = 0.0                   # seconds into the feed
    progress: int = 0                 # messages answered when injected
    recovered: bool = False
    recovery_seconds: float = 0.0     # from the fault until the ledger was ready (or the node current) again
    notes: list[str] = field(default_factory=list)


Fault = Callable[[Stack, random.Random, FaultRecord], Awaitable[None]]


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = RECOVERY_TIMEOUT,
                     every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await predicate():
                return True
        except Exception:
            pass
        await asyncio.sleep(every)
    return False


async def ledger_ready(stack: Stack) -> bool:
    async with httpx.AsyncClient(base_url=stack.http_base, timeout=2.0) as http:
        return (await http.get("/ready")).status_code == 200


async def ready_detail(stack: Stack) -> str:
    """The failing checks of ``/ready``, as the ledger words them (e.g. the integrity findings)."""
    try:
        async with httpx.AsyncClient(base_url=stack.http_base, timeout=5.0) as http:
            body = (await http.get("/ready")).json()
    except Exception as exc:
        return f"no answer ({type(exc).__name__})"
    failing = {name: check.get("detail", "") for name, check in (body.get("checks") or {}).items()
               if not check.get("ok")}
    return "; ".join(f"{name}: {str(detail)[:300]}" for name, detail in failing.items()) or "ready"


async def _recovered(stack: Stack, record: FaultRecord, started: float) -> None:
    record.recovered = await wait_until(lambda: ledger_ready(stack))
    record.recovery_seconds = round(time.monotonic() - started, 2)


# --- the ledger's own processes ------------------------------------------------------------

async def kill_worker(stack: Stack, rng: random.Random, record: FaultRecord) -> None:
    """kill -9 of one of the two adjudicator workers; started again 3 s later, as an orchestrator would."""
    name = rng.choice([n for n in stack.procs if n.startswith("worker-")])
    record.target = name
    started = time.monotonic()
    stack.procs[name].send(signal.SIGKILL)
    stack.procs[name].popen.wait(10)                                        # type: ignore[union-attr]
    await asyncio.sleep(3.0)
    await stack.start_worker(name)
    record.recovered, record.recovery_seconds = True, round(time.monotonic() - started, 2)


async def projection_owners(stack: Stack) -> set[int]:
    """Pids of the projector processes that wrote the checkpoints (``owner`` is ``host:pid``)."""
    conn = await asyncpg.connect(stack.database_url, timeout=5)
    try:
        rows = await conn.fetch("SELECT owner FROM projection_checkpoint")
    finally:
        await conn.close()
    return {int(r["owner"].rsplit(":", 1)[1]) for r in rows if r["owner"] and ":" in r["owner"]}


async def kill_projector(stack: Stack, rng: random.Random, record: FaultRecord) -> None:
    """kill -9 of the projector process that owns the projections; the other replica must take over."""
    owners = await projection_owners(stack)
    names = [n for n, p in stack.procs.items() if n.startswith("projector-") and p.running]
    victim = next((n for n in names if stack.procs[n].pid in owners), names[0])
    record.target = victim
    pid = stack.procs[victim].pid
    started = time.monotonic()
    stack.procs[victim].send(signal.SIGKILL)
    stack.procs[victim].popen.wait(10)                                      # type: ignore[union-attr]
    others = {stack.procs[n].pid for n in names if n != victim}

    async def taken_over() -> bool:
        return bool(await projection_owners(stack) & others) and pid not in await projection_owners(stack)

    record.recovered = await wait_until(taken_over, every=0.5)
    record.recovery_seconds = round(time.monotonic() - started, 2)
    record.notes.append("the other replica took the projections over" if record.recovered
                        else "no other replica wrote a checkpoint")
    stack.start_projector(victim)


async def pause_process(stack: Stack, rng: random.Random, record: FaultRecord) -> None:
    """SIGSTOP, 10 s, SIGCONT of `ledger run`, a worker or a projector (drawn from the seed)."""
    name = rng.choice(["ledger", rng.choice([n for n in stack.procs if n.startswith("worker-")]),
                       rng.choice([n for n in stack.procs if n.startswith("projector-")])])
    record.target = name
    started = time.monotonic()
    stack.procs[name].send(signal.SIGSTOP)
    await asyncio.sleep(PAUSE_SECONDS)
    stack.procs[name].send(signal.SIGCONT)
    await _recovered(stack, record, started)


# --- the embedded servers, brought back by `ledger run`'s supervisor -------------------------

async def _kill_server(stack: Stack, record: FaultRecord, name: str, pid_of: Callable[[], int | None]) -> None:
    pid = pid_of()
    assert pid is not None, f"no {name} pid"
    record.target = f"{name} pid {pid}"
    started = time.monotonic()
    os.kill(pid, signal.SIGKILL)

    async def back() -> bool:
        new = pid_of()
        return new is not None and new != pid and alive(new) and await ledger_ready(stack)

    record.recovered = await wait_until(back)
    record.recovery_seconds = round(time.monotonic() - started, 2)
    restarts = [e for e in stack.log_events() if e.get("event") == "server_restarted" and e.get("server") == name]
    record.notes.append(f"supervisor restarts of {name} so far: {len(restarts)}")


async def kill_nats(stack: Stack, rng: random.Random, record: FaultRecord) -> None:
    """kill -9 of the embedded nats-server; `ledger run` must start it again on the same port and store."""
    await _kill_server(stack, record, "nats", lambda: stack.nats_pid)


async def kill_postgres(stack: Stack, rng: random.Random, record: FaultRecord) -> None:
    """kill -9 of the postmaster; `ledger run` must start PostgreSQL again once the dead one is reaped."""
    await _kill_server(stack, record, "postgres", lambda: stack.postgres_pid)


FAULTS: dict[str, Fault] = {
    "kill_worker": kill_worker,
    "kill_projector": kill_projector,
    "pause_process": pause_process,
    "kill_nats": kill_nats,
    "kill_postgres": kill_postgres,
}
