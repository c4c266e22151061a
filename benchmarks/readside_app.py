"""The read API as bench_projections serves it: `uvicorn --factory benchmarks.readside_app:app`.

The same `create_app(deps, routers=read_routers())` as `ledger run`, over the
database and stream in DATABASE_URL / NATS_URL, plus `GET /bare` returning a
constant (public): the baseline of what Litestar + uvicorn cost by themselves.
"""
from __future__ import annotations

import os

import nats
from litestar import get

from projections.db import create_pool
from services.api.app import ApiDeps, create_app
from services.api.supervision import read_routers
from services.runtime.secrets import person_key

TOKEN = "bench-supervisor-token"


@get("/bare", opt={"public": True}, sync_to_thread=False)
def bare() -> dict[str, str]:
    return {"status": "ok"}


def app():
    secret = os.environ["LEDGER_PERSON_KEY_SECRET"].encode()
    deps = ApiDeps(submit=None, tokens={"supervisor": TOKEN}, person_key=lambda psn: person_key(secret, psn))

    async def start() -> None:
        deps.db = await create_pool(os.environ["DATABASE_URL"], min_size=4, max_size=8)
        deps.nc = await nats.connect(os.environ["NATS_URL"])
        deps.js = deps.nc.jetstream()

    async def stop() -> None:
        await deps.db.close()
        await deps.nc.close()

    application = create_app(deps, routers=[*read_routers(), bare])
    application.on_startup.append(start)
    application.on_shutdown.append(stop)
    return application
