"""Who may use the console: a session cookie set by pasting a role token, the same roles as the API.

The session (Litestar's server-side session, in the app's memory store) holds
the role and a fingerprint of the token that opened it: when tokens.json is
rotated, sessions opened with the old token stop working. The cookie is
HttpOnly and SameSite=Strict; CSRF is Litestar's double-submit middleware, on
the console's routes only (the JSON API uses bearer tokens, which a browser
never sends by itself).
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.types import Empty

CONSOLE_ROLES = ("supervisor", "admin")
SESSION_HOURS = 10                     # a working day; then log in again
COOKIE_PATH = "/console"


def fingerprint(token: str) -> str:
    return hashlib.sha256(b"claims-ledger console session\0" + token.encode()).hexdigest()[:32]


def role_of_token(tokens: Mapping[str, str], presented: str) -> str | None:
    """The role whose token this is; every token is compared, so the time says nothing."""
    given = presented.strip().encode()
    found = None
    for role, token in tokens.items():
        if token and hmac.compare_digest(given, token.encode()):
            found = role
    return found


class _Sessions(ServerSideSessionBackend):
    """Litestar's server-side sessions, except that a visitor who never logged in gets no session
    (the stock backend stores an empty one, and sets a cookie, on every anonymous request)."""

    async def store_in_message(self, scope_session: Any, message: Any, connection: Any) -> None:
        if scope_session is not Empty and not scope_session and not connection.cookies.get(self.config.key):
            return
        await super().store_in_message(scope_session, message, connection)


@dataclass
class SessionConfig(ServerSideSessionConfig):
    _backend_class = _Sessions


def session_config() -> SessionConfig:
    return SessionConfig(key="console_session", path=COOKIE_PATH, httponly=True, samesite="strict",
                                   secure=False, max_age=SESSION_HOURS * 3600, store="console_sessions")


def csrf_config(tokens: Mapping[str, str]) -> CSRFConfig:
    """Double-submit CSRF; its signing key is derived from the role tokens, so it survives restarts
    (a cookie signed by a previous process still verifies) and changes when the tokens do."""
    material = "\0".join(f"{role}={tokens[role]}" for role in sorted(tokens) if tokens[role])
    secret = hashlib.sha256(b"claims-ledger console csrf\0" + material.encode()).hexdigest()
    return CSRFConfig(secret=secret, cookie_name="console_csrf", cookie_path=COOKIE_PATH, cookie_httponly=True,
                      cookie_samesite="strict", cookie_secure=False, header_name="x-csrftoken")


def session_guard(tokens: Mapping[str, str]) -> Any:
    """Route guard: a live session of a role in the route's `opt["roles"]` (default: both console roles)."""

    def guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        if handler.opt.get("console_public"):
            return
        session = connection.scope.get("session") or {}
        role = session.get("role")
        token = tokens.get(role or "")
        if role not in CONSOLE_ROLES or not token or not hmac.compare_digest(session.get("fp", ""),
                                                                              fingerprint(token)):
            raise NotAuthorizedException("log in to the console")
        if role not in handler.opt.get("roles", CONSOLE_ROLES):
            raise PermissionDeniedException(f"role {role!r} may not do this")
        connection.state.role = role

    return guard


def login_url(path: str, query: str = "") -> str:
    target = path + (f"?{query}" if query else "")
    return f"{COOKIE_PATH}/login?next={quote(target, safe='')}"


def safe_next(target: str | None) -> str:
    """Only a path inside the console: never another site, never a scheme-relative URL."""
    if target and target.startswith(COOKIE_PATH + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return COOKIE_PATH + "/"
