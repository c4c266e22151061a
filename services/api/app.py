"""The HTTP API (Litestar): health, readiness, metrics, message intake and whatever routers others add.

Contract for modules that add routes (the read API, audits, admin):

* ``create_app(deps, routers=[...], dependencies={...}) -> Litestar`` does no
  work at import time and none at call time beyond building the app; the
  caller owns every connection in ``deps`` (`ApiDeps`).
* ``routers``: any Litestar route handlers, controllers or ``Router``\\ s; they are
  registered as given, next to this module's handlers and ``/v1/messages``.
* ``dependencies``: extra ``{name: Provide(...)}`` merged into the app's. Every
  handler can also ask for ``deps: ApiDeps`` (services/api/deps.py, typed) — NATS
  (``deps.nc``/``deps.js``), the asyncpg pool (``deps.db``), ``deps.person_key(psn_no)``
  (subject key of a person; never log a psn_no), ``deps.settings`` and the rest the
  composition root (services/compose/read_side.py) hands over.
* **Auth is closed by default.** Every route needs ``Authorization: Bearer
  <token>`` of a role listed in its ``opt={"roles": (...)}`` (roles:
  ``platform``, ``supervisor``, ``admin``; tokens from config or
  ``.ledger/tokens.json``). A route with no ``roles`` answers 403 to everyone;
  mark a route ``opt={"public": True}`` to skip auth (health, readiness,
  metrics and ``/schema`` are public). Options set on a ``Router`` apply to its
  routes. The caller's role is in ``request.state.role``. Routes marked
  ``opt={"session_auth": True}`` (the console, services/console) skip the bearer
  check and bring their own guard.
* ``plugins``: Litestar init plugins, e.g. ``services.console.plugin.ConsolePlugin``.
* **Readiness**: append ``async () -> (name, ok, detail)`` callables to
  ``deps.ready_checks`` (e.g. projection lag); ``GET /ready`` is 200 only when
  every check passes and the ledger is taking messages.

OpenAPI is served under ``/schema`` (``/schema/openapi.json``, Swagger UI at
``/schema/swagger``).
"""
from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from litestar import Litestar, Response, get
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from services.api.deps import ApiDeps, ReadyCheck
from services.observability import CONTENT_TYPE_LATEST

__all__ = ["ApiDeps", "ReadyCheck", "create_app", "ROLES"]

ROLES = ("platform", "supervisor", "admin")


def _bearer_guard(tokens: Mapping[str, str]) -> Callable[[ASGIConnection, BaseRouteHandler], None]:
    known = [(role, token.encode()) for role, token in tokens.items() if token]

    def guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        opt = handler.opt
        if opt.get("public") or opt.get("session_auth") or connection.scope["path"].startswith("/schema"):
            return
        header = connection.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise NotAuthorizedException("missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        given = presented.strip().encode()
        role = None
        for name, token in known:                 # compare with every token: no early exit to time
            if hmac.compare_digest(given, token):
                role = name
        if role is None:
            raise NotAuthorizedException("unknown bearer token", headers={"WWW-Authenticate": "Bearer"})
        allowed = opt.get("roles") or ()
        if role not in allowed:
            raise PermissionDeniedException(f"role {role!r} may not use this route")
        connection.state.role = role

    return guard


@get("/health", opt={"public": True}, sync_to_thread=False, tags=["operations"])
def health() -> dict[str, str]:
    """The process answers (liveness)."""
    return {"status": "ok"}


@get("/ready", opt={"public": True}, tags=["operations"],
     responses={503: ResponseSpec(dict[str, Any], description="Not ready: the failing checks say why",
                                   generate_examples=False)})
async def ready(deps: ApiDeps) -> Response[dict[str, Any]]:
    """200 once the ledger takes messages and NATS, PostgreSQL and every added check are fine; else 503."""
    checks: dict[str, dict[str, Any]] = {"taking_messages": {"ok": bool(deps.taking_messages())}}
    nats_up = deps.nc is None or bool(deps.nc.is_connected)
    if deps.nc is not None:
        checks["nats"] = {"ok": nats_up}
    if deps.db is not None:
        checks["postgres"] = await _postgres_check(deps.db)
    for check in deps.ready_checks:
        if not nats_up:         # they ask NATS: each would wait out its timeout; the answer is 503 anyway
            checks[getattr(check, "__name__", "check")] = {"ok": False, "detail": "not checked: NATS is down"}
            continue
        try:
            name, ok, detail = await asyncio.wait_for(check(), timeout=2.0)
        except Exception as exc:
            name, ok, detail = getattr(check, "__name__", "check"), False, repr(exc)
        checks[name] = {"ok": bool(ok), "detail": detail}
    ok = all(c["ok"] for c in checks.values())
    return Response({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


async def _postgres_check(db: Any) -> dict[str, Any]:
    try:
        async with asyncio.timeout(2.0):
            async with db.acquire() as conn:
                await conn.fetchval("SELECT 1")
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "detail": repr(exc)}


@get("/metrics", opt={"public": True}, tags=["operations"], include_in_schema=False)
async def metrics(deps: ApiDeps) -> Response[bytes]:
    """Prometheus text format."""
    return Response(deps.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def create_app(deps: ApiDeps, routers: Sequence[Any] = (), dependencies: Mapping[str, Provide] | None = None,
               *, plugins: Sequence[Any] = (), debug: bool = False) -> Litestar:
    """The Litestar app; see the module docstring for what `routers` and `dependencies` may add."""
    from services.api.messages import messages_router

    provided: dict[str, Provide] = {"deps": Provide(lambda: deps, use_cache=True, sync_to_thread=False)}
    provided.update(dependencies or {})
    openapi = OpenAPIConfig(
        title="claims-ledger", version="1",
        description="大病保险 and 医疗救助 on an event ledger; messages and results of integration.md.",
        path="/schema", render_plugins=[SwaggerRenderPlugin(path="/swagger"), JsonRenderPlugin()],
        components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
        security=[{"bearer": []}])
    return Litestar(
        route_handlers=[health, ready, metrics, messages_router(), *routers],
        dependencies=provided,
        guards=[_bearer_guard(deps.tokens)],
        openapi_config=openapi,
        plugins=list(plugins),
        debug=debug,
    )

