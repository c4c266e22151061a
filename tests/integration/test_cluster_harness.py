"""The R3 harness itself (services/runtime/cluster.py): an R3 LEDGER, a paused leader replaced, ports kept."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats

from services.nats.connect import connect
from services.runtime.cluster import NatsCluster, create_ledger_stream
from events.subjects import STREAM


def _messages_on(cluster: NatsCluster, name: str) -> int:
    body = cluster.node(name).monitor("/jsz?accounts=true&streams=true")
    return next(d["state"]["messages"] for a in body["account_details"] for d in a["stream_detail"]
                if d["name"] == STREAM)


async def _until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)


async def test_a_paused_leader_is_replaced_and_catches_up_and_a_restart_keeps_its_ports(tmp_path: Path) -> None:
    with NatsCluster(tmp_path) as cluster:
        assert cluster.meta_leader() in {"n1", "n2", "n3"}
        info = await create_ledger_stream(cluster)
        assert info.config.num_replicas == 3 and info.config.name == STREAM
        nc = await connect(cluster.urls)                 # as the ledger connects (pings every 2 s)
        try:
            js = nc.jetstream(timeout=10.0)
            for n in range(5):
                await js.publish("ledger.ref.harness", f"{n}".encode())
            leader = cluster.wait_stream_leader()
            cluster.pause(leader)                              # SIGSTOP past the election timeout
            new = await asyncio.to_thread(cluster.wait_stream_leader, other_than=leader)
            assert new != leader
            started = time.monotonic()                         # a client of the paused node moves on
            for n in range(5, 10):
                while True:
                    try:
                        await js.publish("ledger.ref.harness", f"{n}".encode(), timeout=2.0,
                                         headers={"Nats-Msg-Id": f"harness-{n}"})
                        break
                    except (nats.errors.Error, asyncio.TimeoutError):
                        assert time.monotonic() - started < 20
                        await asyncio.sleep(0.2)
            cluster.resume(leader)
            await _until(lambda: all(_messages_on(cluster, node.name) == 10 for node in cluster.nodes))

            ports = (cluster.node(leader).port, cluster.node(leader).cluster_port)
            cluster.kill(leader)
            assert not cluster.node(leader).running
            cluster.restart(leader)
            assert (cluster.node(leader).port, cluster.node(leader).cluster_port) == ports
            await _until(lambda: _messages_on(cluster, leader) == 10)
        finally:
            await nc.close()
    assert all(not node.running for node in cluster.nodes)
