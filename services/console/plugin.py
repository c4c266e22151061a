"""Adds the console to the API's Litestar app: templates, static files, its routes, session and CSRF.

`create_app(deps, ..., plugins=[ConsolePlugin(deps)])`. Everything is set up in
`on_app_init`, when the app is built; nothing happens at import time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, Router
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.exceptions import (HTTPException, NotAuthorizedException, NotFoundException,
                                 PermissionDeniedException, ValidationException)
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.plugins import InitPluginProtocol
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Response
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from services.api.deps import ApiDeps
from services.api.read_common import ApiError
from services.console.auth import csrf_config, login_url, session_config, session_guard
from services.console.i18n import money, percent
from services.console.state import ConsoleState
from services.console.views import error_page

HERE = Path(__file__).parent


def _not_authorized(request: Request, exc: NotAuthorizedException) -> Response[Any]:
    if request.method == "GET":
        return Redirect(login_url(request.url.path, request.url.query), status_code=303)
    return error_page(request, 401, exc.detail)


def _http_error(request: Request, exc: HTTPException) -> Response[Any]:
    return error_page(request, exc.status_code, exc.detail if exc.status_code < 500 else "")


def _api_error(request: Request, exc: ApiError) -> Response[Any]:
    return error_page(request, exc.status, exc.message, exc.code)


def _validation_error(request: Request, exc: ValidationException) -> Response[Any]:
    return error_page(request, 400, "a parameter of this address is not valid", "invalid_parameter")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    NotAuthorizedException: _not_authorized, PermissionDeniedException: _http_error,
    NotFoundException: _http_error, ValidationException: _validation_error, ApiError: _api_error}


def _engine_callback(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters.update(money=money, percent=percent)
    engine.engine.trim_blocks = engine.engine.lstrip_blocks = True


class ConsolePlugin(InitPluginProtocol):
    """The supervisor console under /console/, and `GET /` leading to it."""

    def __init__(self, deps: ApiDeps) -> None:
        self.deps = deps
        self.state = ConsoleState()

    def router(self) -> Router:
        from services.console.routes_audits import AUDIT_ROUTES
        from services.console.routes_auth import AUTH_ROUTES
        from services.console.routes_lists import LIST_ROUTES
        from services.console.routes_reads import READ_ROUTES
        csrf = DefineMiddleware(CSRFMiddleware, config=csrf_config(self.deps.tokens))
        return Router(path="/console", route_handlers=[*AUTH_ROUTES, *READ_ROUTES, *LIST_ROUTES, *AUDIT_ROUTES],
                      middleware=[session_config().middleware, csrf], guards=[session_guard(self.deps.tokens)],
                      opt={"session_auth": True}, exception_handlers=EXCEPTION_HANDLERS, include_in_schema=False,
                      dependencies={"console": Provide(lambda: self.state, use_cache=True, sync_to_thread=False)})

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        from services.console.routes_auth import root
        app_config.template_config = TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine,
                                                    engine_callback=_engine_callback)
        static = create_static_files_router(path="/console/static", directories=[HERE / "static"],
                                            opt={"public": True}, name="console-static")
        app_config.route_handlers.extend([root, static, self.router()])
        return app_config
