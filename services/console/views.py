"""Rendering a console page: language, role, projection lag and the page's own figures in one context."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.response import Redirect, Template

from services.api.deps import ApiDeps
from services.api.read_common import ApiError
from services.api.supervision import read_projections
from services.console.auth import COOKIE_PATH
from services.console.i18n import LANG_COOKIE, choose_lang, code_labeller, translator


def lang_of(request: Request) -> str:
    return choose_lang(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE),
                       request.headers.get("accept-language"))


def frame(request: Request, lang: str) -> dict[str, Any]:
    """What every template needs besides its figures."""
    other = "en" if lang == "zh-CN" else "zh-CN"
    query = {k: v for k, v in request.query_params.items() if k != "lang"}
    query["lang"] = other
    role = getattr(request.state, "role", None)
    return {"t": translator(lang), "code": code_labeller(lang), "lang": lang, "role": role,
            "is_admin": role == "admin", "other_lang_url": f"{request.url.path}?{urlencode(query)}",
            "path": request.url.path}


async def page(request: Request, deps: ApiDeps, template: str, status: int = 200, **context: Any) -> Template:
    """A full page; its header shows each projection's lag behind the stream."""
    lang = lang_of(request)
    try:
        lags = [(p.name, p.lag) for p in await read_projections(deps)]
    except ApiError:
        lags = []
    cookies = [Cookie(key=LANG_COOKIE, value=lang, path=COOKIE_PATH, samesite="strict", max_age=365 * 86400)] \
        if request.query_params.get("lang") else None
    return Template(template_name=template, context={**frame(request, lang), "lags": lags, **context},
                    status_code=status, cookies=cookies, media_type="text/html")


def error_page(request: Request, status: int, message: str, code: str = "") -> Template:
    """An error as HTML. `message` is the API's message: it never carries a psn_no."""
    lang = lang_of(request)
    return Template(template_name="error.html", context={**frame(request, lang), "lags": None, "status": status,
                                                        "message": message, "error_code": code},
                    status_code=status, media_type="text/html")


def see_other(url: str) -> Redirect:
    return Redirect(url, status_code=303)


def csv_response(name: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response[bytes]:
    """UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese labels right."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return Response(("\ufeff" + out.getvalue()).encode(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
