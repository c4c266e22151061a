"""Logging in and out of the console, and `GET /` leading there."""
from __future__ import annotations

from litestar import Request, get, post
from litestar.response import Redirect, Template

from services.api.deps import ApiDeps
from services.console.auth import CONSOLE_ROLES, fingerprint, role_of_token, safe_next
from services.console.views import page, see_other


@get("/", opt={"public": True}, include_in_schema=False, sync_to_thread=False)
def root() -> Redirect:
    """A browser pointed at the server lands on the console."""
    return Redirect("/console/", status_code=302)


@get("/login", opt={"console_public": True}, name="console-login")
async def login_form(request: Request, deps: ApiDeps, next: str | None = None) -> Template:
    return await page(request, deps, "login.html", next=safe_next(next), error=None)


@post("/login", opt={"console_public": True})
async def login(request: Request, deps: ApiDeps) -> Template | Redirect:
    form = await request.form()
    role = role_of_token(deps.tokens, str(form.get("token") or ""))
    target = safe_next(str(form.get("next") or ""))
    if role not in CONSOLE_ROLES:
        key = "login.platform" if role == "platform" else "login.bad"
        return await page(request, deps, "login.html", status=403 if role else 401, next=target, error=key)
    await request.app.stores.get("console_sessions").delete_expired()     # the memory store never forgets alone
    request.set_session({"role": role, "fp": fingerprint(deps.tokens[role])})
    return see_other(target)


@post("/logout")
async def logout(request: Request) -> Redirect:
    request.clear_session()
    return see_other("/console/login")


AUTH_ROUTES = [login_form, login, logout]
