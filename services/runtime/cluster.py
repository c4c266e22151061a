"""A local NATS cluster (3 nodes on loopback) with an R3 LEDGER stream, for tests and `make chaos`.

Why: design §2 makes the R3 cluster the production shape, and Jepsen's NATS
2.12.1 faults (a killed leader, a paused node, a corrupted minority) can only be
tried on a real one. Each node is a real ``nats-server`` with its own store,
``sync_interval: always`` (as deploy/nats/cluster-r3.conf), routes on 127.0.0.1.

Ports are never guessed: every node first binds ``-1`` (any free port) for
clients, routes and monitoring, and reports them in its ports file. JetStream in
a cluster refuses to start without a configured route, so the first node is
given one to a socket this harness holds bound but not listening (refused, and
no other process can take it); the second routes to the first, the third to
both. Once all are up every node's config lists every route and is reloaded
(SIGHUP). A node restarted later keeps the ports it bound first.

Every node runs the same accounts and users as every other mode
(deploy/nats/accounts.conf, ADR 0009), with passwords generated once into
``base_dir/nats-users.json``: `urls` is what the services connect with (user
``ledger``), `urls_for("admin")` sets the streams up (`provision`),
`urls_for("platform")` is the platform.

Node faults (`kill`, `stop`, `pause`/`resume`, `restart`) are per node name
(``n1``...); `stream_leader()` and `meta_leader()` ask the monitoring endpoint.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.runtime.embedded import EmbeddedProcess
from services.runtime.nats_users import accounts_config, nats_users, url_for
from events.subjects import STREAM

CLUSTER_NAME = "ledger"


@dataclass
class ClusterNode(EmbeddedProcess):
    """One node; ``name`` is its server_name. Ports are 0 until it first bound them."""

    cluster_port: int = 0
    monitor_port: int = 0
    routes: list[str] = field(default_factory=list)
    max_payload: int | None = None
    extra_config: str = ""
    paused: bool = False
    standalone: bool = False          # one node alone: no cluster block (a test server with options)

    def config_text(self) -> str:
        q = json.dumps
        d = self.data_dir
        lines = [
            "# Written by services.runtime.cluster at every start; edits are overwritten.",
            f"server_name: {q(self.name)}",
            f"listen: {q(f'127.0.0.1:{self.port or -1}')}",
            f"http: {q(f'127.0.0.1:{self.monitor_port or -1}')}",
            f"max_payload: {self.max_payload}" if self.max_payload else "max_payload: 8MB",
            f"pid_file: {q(str(d / 'nats-server.pid'))}",
            f"ports_file_dir: {q(str(d))}",
            "jetstream {",
            f"  store_dir: {q(str(d))}",
            "  sync_interval: always   # Jepsen NATS 2.12.1: a quorum alone does not keep acknowledged writes",
            "}",
            *([] if self.standalone else [
                "cluster {",
                f"  name: {CLUSTER_NAME}",
                f"  listen: {q(f'127.0.0.1:{self.cluster_port or -1}')}",
                f"  routes: [{', '.join(q(r) for r in self.routes)}]",
                "}"]),
            self.extra_config,
            "",
            accounts_config(self.users),
        ]
        return "\n".join(lines)

    def _launch(self, timeout: float) -> None:
        super()._launch(timeout)
        self.paused = False
        if not self.standalone:
            self.cluster_port = _port_of(self.ports["cluster"][0])
        self.monitor_port = _port_of(self.ports["monitoring"][0])

    @property
    def route_url(self) -> str:
        return f"nats-route://127.0.0.1:{self.cluster_port}"

    def monitor(self, path: str, timeout: float = 2.0) -> Any:
        """GET a monitoring endpoint (``/varz``, ``/jsz?...``) of this node as JSON."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}{path}", timeout=timeout) as reply:
            return json.loads(reply.read())

    @property
    def running(self) -> bool:
        return self.exit_status() is None


class NatsCluster:
    """``size`` nodes under ``base_dir/<name>``; a context manager that stops every node on exit.

    ``size=1`` is one standalone JetStream server with the same options (``max_payload``,
    monitoring, ``extra_config``): what tests of one server's limits use.
    """

    def __init__(self, base_dir: Path, size: int = 3, *, max_payload: int | None = None, extra_config: str = ""):
        self.base_dir = Path(base_dir).expanduser().resolve()
        self.users = nats_users(self.base_dir)
        self.nodes = [ClusterNode(anonymous_url="", port=0, data_dir=self.base_dir / f"n{i}", process=None,
                                  log_path=self.base_dir / f"n{i}" / "nats-server.log", users=self.users,
                                  name=f"n{i}", max_payload=max_payload, extra_config=extra_config,
                                  standalone=size == 1)
                      for i in range(1, size + 1)]
        self._placeholder: socket.socket | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> NatsCluster:
        """Start every node (staged, see the module doc), then wait until the meta group has a leader."""
        self._placeholder = socket.socket()
        self._placeholder.bind(("127.0.0.1", 0))       # bound, never listening: a route to it is refused
        placeholder = f"nats-route://127.0.0.1:{self._placeholder.getsockname()[1]}"
        try:
            if len(self.nodes) == 1:
                self.nodes[0].data_dir.mkdir(parents=True, exist_ok=True)
                self.nodes[0]._launch(timeout)
                return self
            for i, node in enumerate(self.nodes):
                node.data_dir.mkdir(parents=True, exist_ok=True)
                node.routes = [n.route_url for n in self.nodes[:i]] or [placeholder]
                node._launch(timeout)
            for node in self.nodes:                     # now every route is known: all to all
                node.routes = [n.route_url for n in self.nodes]
                node.data_dir.joinpath("nats-server.conf").write_text(node.config_text(), encoding="utf-8")
                os.kill(node.pid, signal.SIGHUP)        # type: ignore[arg-type]
            self.wait_meta_leader(timeout)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for node in self.nodes:
            if node.paused:
                self.resume(node.name)
            node.stop(timeout=10.0)
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what clients see --------------------------------------------------------------

    @property
    def urls(self) -> str:
        """The services' NATS_URL: ``nats://ledger:…@127.0.0.1:a,…`` over every node."""
        return self.urls_for("ledger")

    def urls_for(self, user: str, nodes: Iterable[ClusterNode] | None = None) -> str:
        """NATS user ``user``'s URLs (password included) of ``nodes`` (default: all), comma-separated."""
        return ",".join(url_for(f"nats://127.0.0.1:{n.port}", self.users[user]) for n in nodes or self.nodes)

    def provision(self, replicas: int | None = None) -> None:
        """Set streams LEDGER and PLATFORM_IN up as the NATS admin (`ledger setup-streams` does the same)."""
        from services.nats.provision import provision_streams_blocking
        provision_streams_blocking(self.urls_for("admin"), replicas=replicas or min(3, len(self.nodes)))

    def node(self, name: str) -> ClusterNode:
        return next(n for n in self.nodes if n.name == name)

    # --- faults ------------------------------------------------------------------------

    def kill(self, name: str) -> None:
        """kill -9: no flush, no goodbye to its peers."""
        node = self.node(name)
        if node.paused:
            self.resume(name)
        assert node.process is not None
        node.process.kill()
        node.process.wait(10)

    def stop(self, name: str) -> None:
        """SIGTERM: the node flushes and leaves."""
        if self.node(name).paused:
            self.resume(name)
        self.node(name)._end(10.0)

    def pause(self, name: str) -> None:
        """SIGSTOP: alive to the kernel (its sockets stay open), silent to its peers."""
        node = self.node(name)
        os.kill(node.pid, signal.SIGSTOP)               # type: ignore[arg-type]
        node.paused = True

    def resume(self, name: str) -> None:
        node = self.node(name)
        os.kill(node.pid, signal.SIGCONT)               # type: ignore[arg-type]
        node.paused = False

    def restart(self, name: str, timeout: float = 60.0) -> None:
        """Start a stopped or killed node again on its ports and store (kills it first if it runs)."""
        node = self.node(name)
        if node.running:
            self.kill(name)
        node._launch(timeout)

    # --- who leads ---------------------------------------------------------------------

    def _ask(self, path: str, among: Iterable[ClusterNode] | None = None) -> list[tuple[ClusterNode, Any]]:
        answers = []
        for node in among or self.nodes:
            if not node.running or node.paused:
                continue
            try:
                answers.append((node, node.monitor(path)))
            except (OSError, ValueError):
                continue
        return answers

    def meta_leader(self) -> str | None:
        """The meta group's leader, if the running nodes agree on one and it is one of them."""
        leaders = {(body.get("meta_cluster") or {}).get("leader") for _, body in self._ask("/jsz")}
        running = {n.name for n in self.nodes if n.running and not n.paused}
        if len(leaders) == 1:
            leader = leaders.pop()
            return leader if leader in running else None
        return None

    def wait_meta_leader(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.meta_leader()
            sizes = {(body.get("meta_cluster") or {}).get("cluster_size") for _, body in self._ask("/jsz")}
            if leader is not None and sizes == {len(self.nodes)}:
                return leader
            time.sleep(0.1)
        raise TimeoutError(f"no JetStream meta leader within {timeout:.0f}s; see {self.base_dir}/n*/nats-server.log")

    def stream_leader(self, stream: str = STREAM) -> str | None:
        """The node that leads ``stream`` now, as the running nodes report it (any account)."""
        for _, body in self._ask("/jsz?accounts=true&streams=true"):
            for account in body.get("account_details") or []:
                for detail in account.get("stream_detail") or []:
                    if detail.get("name") == stream:
                        leader = (detail.get("cluster") or {}).get("leader")
                        if leader:
                            return leader
        return None

    def wait_stream_leader(self, stream: str = STREAM, *, other_than: str | None = None,
                           timeout: float = 30.0) -> str:
        """A leader for ``stream`` among the running nodes (not ``other_than``: a new one after a fault)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.stream_leader(stream)
            if leader is not None and leader != other_than and self.node(leader).running:
                return leader
            time.sleep(0.1)
        raise TimeoutError(f"no leader for stream {stream} within {timeout:.0f}s")

    def connections(self, name: str | None = None) -> list[dict]:
        """Client connections of the running nodes (``/connz``), only those named ``name`` if given."""
        conns = [c for _, body in self._ask("/connz?limit=10000") for c in body.get("connections") or []]
        return [c for c in conns if name is None or c.get("name") == name]

    def slow_consumers(self) -> int:
        """Slow consumers the running nodes counted (clients cut for not reading fast enough)."""
        return sum(int(body.get("slow_consumers") or 0) for _, body in self._ask("/varz"))


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def create_ledger_stream(cluster: NatsCluster, replicas: int = 3, **connect: Any) -> Any:
    """Create (or bring to the required settings) stream LEDGER with ``replicas``, as the NATS admin;
    returns its StreamInfo."""
    import nats

    from services.nats.streams import ensure_ledger_stream

    nc = await nats.connect(servers=cluster.urls_for("admin").split(","), **connect)
    try:
        return await ensure_ledger_stream(nc.jetstream(timeout=10.0), replicas=replicas)
    finally:
        await nc.close()
