"""The error answers each route declares in OpenAPI, so the document says what a client really gets.

schemathesis (tests/integration/test_http_fuzz.py) holds every answer of the running app to the document:
the guard's 401/403 come in Litestar's shape (``status_code``, ``detail``); the read routes' own errors,
validation included (read_common's handler), as `ErrorBody` (``code``, ``message``).
"""
from __future__ import annotations

import msgspec
from litestar.openapi.datastructures import ResponseSpec

from services.api.read_common import ErrorBody

_WHY = {
    400: "A parameter is not valid (`invalid_parameter`)",
    404: "Not in the read models (`not_found`)",
    409: "The ledger's state does not allow it now",
    503: "A server this route needs is not configured or not reachable (`unavailable`)",
}


class GuardError(msgspec.Struct):
    """Litestar's body for an exception the auth guard raises."""
    status_code: int
    detail: str


AUTH: dict[int, ResponseSpec] = {
    401: ResponseSpec(GuardError, description="No bearer token, or not one of the configured tokens",
                      generate_examples=False),
    403: ResponseSpec(GuardError, description="The token's role may not use this route", generate_examples=False),
}


def errors(*codes: int) -> dict[int, ResponseSpec]:
    """401 and 403, plus these codes with an `ErrorBody`."""
    return {**AUTH, **{c: ResponseSpec(ErrorBody, description=_WHY[c], generate_examples=False) for c in codes}}
