"""Faults of the R3 cluster (Jepsen, NATS 2.12.1): a killed stream leader, a leader paused past its
election timeout, and a follower whose message blocks are truncated or bit-flipped while it is down.

Each node is a real nats-server of services/runtime/cluster.py; what a node holds
of LEDGER is read from its own monitoring endpoint, so a node that diverges
from the others shows in the fault's notes even where no client reads it.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path

import nats

from benchmarks.chaos.faults import PAUSE_SECONDS, Fault, FaultRecord, ledger_ready, ready_detail, wait_until
from benchmarks.chaos.stack import Stack
from services.runtime.cluster import ClusterNode, NatsCluster
from events.subjects import STREAM


def stream_state(node: ClusterNode) -> dict | None:
    """LEDGER's state as ``node`` itself holds it (messages, first_seq, last_seq), None if it cannot say."""
    try:
        body = node.monitor("/jsz?accounts=true&streams=true")
    except (OSError, ValueError):
        return None
    for account in body.get("account_details") or []:
        for detail in account.get("stream_detail") or []:
            if detail.get("name") == STREAM:
                return detail.get("state")
    return None


def states(cluster: NatsCluster) -> dict[str, tuple[int, int] | None]:
    """Per node: (messages, last_seq) of LEDGER, None for a node down or not answering."""
    out: dict[str, tuple[int, int] | None] = {}
    for node in cluster.nodes:
        state = stream_state(node) if node.running and not node.paused else None
        out[node.name] = (state["messages"], state["last_seq"]) if state else None
    return out


async def _current(cluster: NatsCluster, name: str) -> bool:
    """``name`` holds as much of LEDGER as every other running node does."""
    held = states(cluster)
    mine = held.pop(name)
    others = [state for state in held.values() if state is not None]
    return mine is not None and bool(others) and all(mine >= other for other in others)


async def _back(stack: Stack, cluster: NatsCluster, name: str) -> bool:
    """``name`` caught up with the leader and the ledger ready again, within the recovery bound."""
    return await wait_until(lambda: _current(cluster, name)) and await wait_until(lambda: ledger_ready(stack))


def _cluster(stack: Stack) -> NatsCluster:
    assert stack.cluster is not None, "an R3 fault needs an r3 stack"
    return stack.cluster


async def kill_leader(stack: Stack, rng: random.Random, record: FaultRecord) -> None:
    """kill -9 of LEDGER's stream leader; restarted 5 s later, it must catch up from the new leader."""
    cluster = _cluster(stack)
    leader = await asyncio.to_thread(cluster.wait_stream_leader)
    record.target = leader
    started = time.monotonic()
    await asyncio.to_thread(cluster.kill, leader)
    new = await asyncio.to_thread(cluster.wait_stream_leader, other_than=leader, timeout=60)
    record.notes.append(f"{new} leads after {time.monotonic() - started:.1f} s")
    await asyncio.sleep(5.0)
    await asyncio.to_thread(cluster.restart, leader)
    record.recovered = await _back(stack, cluster, leader)
    record.recovery_seconds = round(time.monotonic() - started, 2)
    record.notes.append(f"states {states(cluster)}")


async def pause_leader(stack: Stack, rng: random.Random, record: FaultRecord) -> None:
    """SIGSTOP of the stream leader for 10 s (past the election timeout), then SIGCONT."""
    cluster = _cluster(stack)
    leader = await asyncio.to_thread(cluster.wait_stream_leader)
    record.target = leader
    started = time.monotonic()
    cluster.pause(leader)
    try:
        await asyncio.sleep(PAUSE_SECONDS)
        record.notes.append(f"leader while paused: {cluster.stream_leader()}")
    finally:
        cluster.resume(leader)
    record.recovered = await _back(stack, cluster, leader)
    record.recovery_seconds = round(time.monotonic() - started, 2)
    record.notes.append(f"leader after: {cluster.stream_leader()}; states {states(cluster)}")


def blocks(node: ClusterNode) -> list[Path]:
    """LEDGER's message blocks in a node's store, oldest first."""
    msgs = node.data_dir / "jetstream" / "LEDGER" / "streams" / STREAM / "msgs"
    return sorted(msgs.glob("*.blk"), key=lambda p: int(p.stem))


def corrupt(path: Path, rng: random.Random) -> str:
    """Truncate ``path`` to 30–90% of its size, or flip one bit in it (drawn from ``rng``)."""
    size = path.stat().st_size
    if rng.random() < 0.5:
        keep = int(size * rng.uniform(0.3, 0.9))
        with path.open("r+b") as fh:
            fh.truncate(keep)
        return f"truncated {path.name} from {size} to {keep} bytes"
    offset = rng.randrange(size)
    bit = rng.randrange(8)
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ (1 << bit)]))
    return f"flipped bit {bit} of byte {offset} in {path.name} ({size} bytes)"


async def _step_down(cluster: NatsCluster, preferred: str) -> str:
    nc = await nats.connect(servers=cluster.urls_for("admin").split(","), connect_timeout=3)
    try:
        reply = await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{STREAM}",
                                 json.dumps({"placement": {"preferred": preferred}}).encode(), timeout=10)
        return reply.data.decode()[:200]
    finally:
        await nc.close()


async def corrupt_follower(stack: Stack, rng: random.Random, record: FaultRecord) -> None:
    """Stop a follower, truncate or bit-flip one of its LEDGER blocks, start it, then hand it the
    leadership (a stepdown preferring it), so that its data gets every chance to win."""
    cluster = _cluster(stack)
    leader = await asyncio.to_thread(cluster.wait_stream_leader)
    follower = rng.choice([n.name for n in cluster.nodes if n.name != leader])
    record.target = follower
    started = time.monotonic()
    await asyncio.to_thread(cluster.stop, follower)
    files = blocks(cluster.node(follower))
    if not files:
        record.notes.append("no message block to corrupt")
    else:
        record.notes.append(corrupt(rng.choice(files), rng))
    await asyncio.to_thread(cluster.restart, follower)
    record.notes.append(f"states after restart {states(cluster)}")
    await asyncio.sleep(2.0)
    try:
        record.notes.append(f"stepdown preferring {follower}: {await _step_down(cluster, follower)}")
    except Exception as exc:
        record.notes.append(f"stepdown failed: {exc!r}")
    await asyncio.sleep(3.0)
    record.notes.append(f"leader after stepdown: {cluster.stream_leader()}")
    record.recovered = await _back(stack, cluster, follower)
    record.recovery_seconds = round(time.monotonic() - started, 2)
    record.notes.append(f"states {states(cluster)}")
    if not record.recovered:                 # held on purpose? what /ready says is the ledger's own word
        record.notes.append(f"/ready: {await ready_detail(stack)}")


CLUSTER_FAULTS: dict[str, Fault] = {
    "kill_leader": kill_leader,
    "pause_leader": pause_leader,
    "corrupt_follower": corrupt_follower,
}
