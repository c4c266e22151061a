"""A ledger with its read side as `ledger run` wires them (services/cli/run.py `start_read_side`), on test
servers, with short check intervals; and the operator's hand that deletes the stream."""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats

from ledger_support import SEAL_SECRET, rpc, settings_for
from events import samples as s
from services.api.app import create_app
from services.api.supervision import read_routers
from services.compose.ledger import Ledger
from services.compose.process import bootstrap
from services.compose.read_side import start_read_side
from services.runtime.options import RuntimeOptions
from services.nats.feed_config import FeedConfig
from events.subjects import STREAM
from services.nats.streams import ensure_ledger_stream

TOKENS = {"platform": "tok-platform", "supervisor": "tok-supervisor", "admin": "tok-admin"}
SUPERVISOR = {"Authorization": "Bearer tok-supervisor"}
PLATFORM = {"Authorization": "Bearer tok-platform"}
SEAL_KEY = SEAL_SECRET.encode()
POLL = 0.3            # the adjudicator's guard and the read side's stream check, seconds


@dataclass
class Running:
    ledger: Ledger
    read_side: Any
    http: httpx.AsyncClient
    platform: Any = None          # a NATS connection as the platform (requests, feeds, results)
    admin_js: Any = None          # JetStream as the NATS admin (the hand that deletes the stream)

    @property
    def js(self) -> Any:
        return self.ledger.js

    @property
    def nc(self) -> Any:
        return self.ledger.nc


@contextlib.asynccontextmanager
async def ledger_with_read_side(server: Any, database_url: str, data_dir: Path, *, transports: bool = True,
                                guard_poll: float = POLL) -> AsyncIterator[Running]:
    """`server`: the test's embedded nats-server (`fresh_nats`): the ledger connects as its services' user."""
    options = RuntimeOptions(feed=FeedConfig(ack_wait=5.0, nak_delay=0.05), integrity_poll=guard_poll)
    ledger = await bootstrap(settings_for(data_dir), nats_url=server.url, database_url=database_url, options=options)
    platform = await nats.connect(server.url_for("platform"))
    admin = await nats.connect(server.url_for("admin"))
    read_side = None
    try:
        read_side, deps = await start_read_side(ledger, database_url, TOKENS, every=POLL, page=50, page_every=0.1, round_every=0)
        if transports:
            await ledger.start_transports()
        app = create_app(deps, routers=read_routers())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ledger") as http:
            yield Running(ledger, read_side, http, platform, admin.jetstream())
    finally:
        if read_side is not None:
            await read_side.close()
        await ledger.close()
        await platform.close()
        await admin.close()


async def drop_stream(js: Any) -> None:
    """What an admin (or a lost disk) does to LEDGER. With NATS accounts this needs the admin user:
    pass that connection's JetStream context here."""
    await js.delete_stream(STREAM)


async def recreate_stream(js: Any) -> None:
    await drop_stream(js)
    await ensure_ledger_stream(js)


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 20.0, every: float = 0.1) -> Any:
    """The first truthy value of `check()` within `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout}s (last: {value!r})")
        await asyncio.sleep(every)


async def ready(http: httpx.AsyncClient) -> tuple[int, dict]:
    response = await http.get("/ready")
    return response.status_code, response.json()


async def projected(run: Running) -> bool:
    """Every projection at the stream's last sequence, and the integrity check passing."""
    last = (await run.js.stream_info(STREAM)).state.last_seq
    rows = await run.ledger.db.fetch("SELECT seq FROM projection_checkpoint")
    status, _ = await ready(run.http)
    return bool(rows) and all(r["seq"] == last for r in rows) and status == 200


def metric(text: str, name: str, **labels: str) -> float:
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {want} in metrics")


async def record_hospital(nc: Any) -> None:
    assert (await rpc(nc, s.dumps(s.medins()), "medins"))["result"] in ("recorded", "duplicate")


async def settle_person(nc: Any, psn_no: str, setl_ids: list[str], total: str = "60000.00") -> list[dict]:
    """Grant `psn_no` dibao, enrol them and settle each stay; the settlements' answers."""
    assert (await rpc(nc, s.dumps(s.identity(psn_no)), "psn_identity"))["result"] == "recorded"
    assert (await rpc(nc, s.dumps(s.enrolment(psn_no)), "enrolment"))["result"] == "settled"
    return [await rpc(nc, s.dumps(s.settlement(setl_id, psn_no, total=total))) for setl_id in setl_ids]


def unavailable(reply: dict) -> bool:
    return reply.get("result") == "error" and reply.get("reason", {}).get("code") == "unavailable"


def body(obj: Any) -> bytes:
    return json.dumps(obj).encode()
