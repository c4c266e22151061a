"""One node of the local NATS cluster (services/runtime/cluster.py): its config and the ports it bound.

An `EmbeddedProcess` with routes, a monitoring port and a cluster block; ``standalone`` leaves the
cluster block out (one server with the same options)."""
from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from services.runtime.embedded_nats import EmbeddedProcess
from services.runtime.nats_users import accounts_config

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


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])
