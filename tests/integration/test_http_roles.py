"""Every HTTP route × {no token, unknown token, platform, supervisor, admin} on a real `ledger run`, and what
must never leave it: tokens, the person-key secret or a psn_no in a log line, a metric or an error body.

The routes are enumerated from the Litestar app's route table and must equal the table below, so a new
route fails this test until someone decides who may call it.
"""
from __future__ import annotations

import hmac
import json

import httpx
import pytest

from ledger_app import OTHER_PSN, PSN, LedgerApp, ledger_app  # noqa: F401  (the fixture)
from events import samples as s
from services.api.app import ApiDeps, create_app
from services.api.supervision import read_routers

PUBLIC = "public"
SUP = ("supervisor", "admin")
ROLES = ("platform", "supervisor", "admin")

# (method, route) -> (who may call it, status a caller who may gets for the request below).
# Paths use the seeded traffic's ids ({setl_id}, {dead_letter}, {audit}) and its person.
TABLE: dict[tuple[str, str], tuple[object, int]] = {
    ("GET", "/health"): (PUBLIC, 200),
    ("GET", "/ready"): (PUBLIC, 200),
    ("GET", "/metrics"): (PUBLIC, 200),
    ("GET", "/schema"): (PUBLIC, 200),
    ("GET", "/schema/swagger"): (PUBLIC, 200),
    ("GET", "/schema/openapi.json"): (PUBLIC, 200),
    ("GET", "/schema/oauth2-redirect.html"): (PUBLIC, 200),
    ("GET", "/schema/{path:str}"): (PUBLIC, 404),
    ("POST", "/v1/messages"): (("platform",), 200),
    ("GET", "/v1/persons/{psn_no:str}/years/{year:int}"): (SUP, 200),
    ("GET", "/v1/persons/{psn_no:str}/events"): (SUP, 200),
    ("GET", "/v1/settlements/{setl_id:str}"): (SUP, 200),
    ("GET", "/v1/funds/flows"): (SUP, 200),
    ("GET", "/v1/warnings"): (SUP, 200),
    ("GET", "/v1/dead-letters"): (SUP, 200),
    ("POST", "/v1/dead-letters/{dead_letter_id:str}/redrive"): (("admin",), 200),
    ("POST", "/v1/audits"): (SUP, 202),
    ("GET", "/v1/audits/{audit_id:str}"): (SUP, 200),
    ("GET", "/v1/verify"): (SUP, 200),
    ("GET", "/v1/projections"): (SUP, 200),
    ("GET", "/v1/overview"): (SUP, 200),
    ("GET", "/v1/digest"): (SUP, 200),
    ("GET", "/v1/digest/key"): (SUP, 200),
}
# Litestar answers OPTIONS on every path with a handler of its own that takes the router's options: the
# public operations routes get none (so OPTIONS there is closed like any route without roles), /schema
# is skipped by the guard, and redrive's OPTIONS follows its router (supervisor, admin), not the POST.
OPTIONS: dict[str, object] = {
    "/health": (), "/ready": (), "/metrics": (), "/v1/messages": ("platform",),
    "/v1/dead-letters/{dead_letter_id:str}/redrive": SUP,
}


def _route_table() -> set[tuple[str, str]]:
    app = create_app(ApiDeps(submit=None, tokens={}), routers=read_routers())   # as `ledger run` builds it
    return {(method, route.path) for route in app.routes for method in getattr(route, "methods", ())}


def _request(app: LedgerApp, method: str, route: str) -> tuple[str, dict]:
    path = (route.replace("{psn_no:str}", PSN).replace("{year:int}", "2022")
            .replace("{setl_id:str}", app.ids["setl_id"]).replace("{dead_letter_id:str}", app.ids["dead_letter"])
            .replace("{audit_id:str}", app.ids["audit"]).replace("{path:str}", "no-such-page"))
    body = {}
    if (method, route) == ("POST", "/v1/messages"):
        body = {"content": s.dumps(s.medins())}
    elif (method, route) == ("POST", "/v1/audits"):
        body = {"json": {"psn_no": PSN}}
    return path, body


def _cases() -> list[tuple[str, str, str | None]]:
    callers = [None, "unknown", *ROLES]
    return [(m, r, c) for (m, r) in sorted(_route_table()) for c in callers]


def test_the_table_names_every_route() -> None:
    routes = _route_table()
    assert {k for k in routes if k[0] != "OPTIONS"} == set(TABLE)
    assert {r for m, r in routes if m == "OPTIONS"} == {r for _, r in TABLE}


def _expected(method: str, route: str, caller: str | None) -> object:
    """200.. for a caller who may, else 401 (no or unknown token) / 403 (a role that may not)."""
    if method == "OPTIONS":
        allowed: object = PUBLIC if route.startswith("/schema") else OPTIONS.get(route, SUP)
        ok = 204
    else:
        allowed, ok = TABLE[(method, route)]
    if allowed == PUBLIC:
        return ok
    if caller in (None, "unknown"):
        return 401
    return ok if caller in allowed else 403    # type: ignore[operator]


@pytest.mark.parametrize("method,route,caller", _cases())
def test_route_by_role(ledger_app: LedgerApp, method: str, route: str, caller: str | None) -> None:  # noqa: F811
    path, body = _request(ledger_app, method, route)
    headers = {} if caller is None else (
        {"Authorization": f"Bearer {ledger_app.tokens['admin']}x"} if caller == "unknown" else ledger_app.auth(caller))
    r = httpx.request(method, ledger_app.url + path, headers=headers, timeout=60, **body)
    assert r.status_code == _expected(method, route, caller), r.text[:500]
    if r.status_code in (401, 403):
        assert r.json()["status_code"] == r.status_code
        assert not any(secret in r.text for secret in ledger_app.secrets())
    if r.status_code == 401:
        assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("presented", ["platform", "admin", "unknown", "prefix"])
async def test_every_token_is_compared_in_constant_time(presented: str, monkeypatch) -> None:
    """hmac.compare_digest against every role's token, whichever matches (none, the first, the last)."""
    tokens = {"platform": "tok-aaaaaaaa", "supervisor": "tok-bbbbbbbb", "admin": "tok-cccccccc"}
    given = {"unknown": "tok-zzzzzzzz", "prefix": "tok-aaaa"}.get(presented) or tokens.get(presented)
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)
    monkeypatch.setattr(hmac, "compare_digest", counting)
    app = create_app(ApiDeps(submit=None, tokens=tokens), routers=read_routers())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ledger") as http:
        r = await http.get("/v1/digest/key", headers={"Authorization": f"Bearer {given}"})
    assert r.status_code == {"platform": 403, "admin": 503}.get(presented, 401)      # admin passes; no data dir
    assert calls == [(given.encode(), t.encode()) for t in tokens.values()]          # all three, in order


def test_no_secret_or_psn_no_in_logs_metrics_or_error_bodies(ledger_app: LedgerApp) -> None:  # noqa: F811
    app, sup = ledger_app, ledger_app.auth("supervisor")
    bodies: list[str] = []
    with httpx.Client(base_url=app.url, timeout=60) as http:
        def call(method: str, path: str, **kw) -> httpx.Response:
            r = http.request(method, path, **kw)
            bodies.append(r.text)
            return r
        for auth in ({}, {"Authorization": f"Bearer {PSN}"}, {"Authorization": f"Bearer {app.tokens['admin'][:-1]}"},
                     {"Authorization": app.tokens["supervisor"]}, app.auth("platform")):
            assert call("GET", f"/v1/persons/{PSN}/years/2022", headers=auth).status_code in (401, 403)
        assert call("GET", f"/v1/persons/{PSN}/years/2022", headers=sup).status_code == 200
        assert call("GET", f"/v1/persons/{PSN}/years/2021", headers=sup).status_code == 404
        assert call("GET", f"/v1/persons/{PSN}/years/x{PSN}", headers=sup).status_code in (400, 404)
        assert call("GET", f"/v1/persons/{PSN}/events", params={"cursor": PSN}, headers=sup).status_code == 400
        assert call("GET", f"/v1/persons/{PSN}/events", params={"type": PSN}, headers=sup).status_code == 400
        assert call("GET", f"/v1/persons/{PSN}/events", params={"year": "abc"}, headers=sup).status_code == 400
        assert call("GET", f"/v1/persons/{OTHER_PSN}/events", headers=sup).status_code == 404
        assert call("GET", "/v1/verify", params={"psn_no": PSN}, headers=sup).status_code == 200
        assert call("GET", "/v1/verify", params={"psn_no": OTHER_PSN}, headers=sup).status_code == 404
        assert call("POST", "/v1/audits", json={"psn_no": PSN, "from": "x"}, headers=sup).status_code == 400
        audit = call("POST", "/v1/audits", json={"psn_no": PSN}, headers=sup).json()
        assert call("GET", f"/v1/audits/{audit['id']}", headers=sup).status_code == 200
        assert call("GET", f"/v1/settlements/{PSN}", headers=sup).status_code == 404
        assert call("GET", "/v1/warnings", params={"area": PSN}, headers=sup).status_code == 400
        assert call("GET", "/v1/digest", params={"upto": PSN}, headers=sup).status_code == 400
        # Results carry psn_no by contract (integration.md §2): only there, never in a reason.
        platform = app.auth("platform")
        for raw in (s.dumps(s.settlement("LEAK-1", OTHER_PSN)), s.dumps({"msg_type": "settlement", "psn_no": PSN}),
                    s.dumps({"msg_type": "teleport", "psn_no": PSN}), f'{{"psn_no": "{PSN}"'.encode()):
            r = http.post("/v1/messages", content=raw, headers=platform)
            assert r.status_code in (200, 400)
            result = r.json()
            assert result["result"] == "rejected" and result["reason"]["code"]
            result.pop("psn_no", None)
            bodies.append(json.dumps(result, ensure_ascii=False))
        metrics = http.get("/metrics").text
    assert "ledger_messages_total" in metrics
    log = app.log()
    assert '"event": "ready"' in log                   # the whole log of the process, at LEDGER_LOG_LEVEL=debug
    for secret in app.secrets():
        assert secret not in metrics, secret
        assert secret not in log, secret
        for body in bodies:
            assert secret not in body, (secret, body[:300])


@pytest.mark.parametrize("path,params", [
    (f"/v1/persons/{PSN}/events", {"year": "-2239683105244"}),          # found by schemathesis: a 500
    ("/v1/warnings", {"year": "46902852365161250816"}),
    (f"/v1/persons/{PSN}/events", {"cursor": "99999999999999999999.0"}),
    ("/v1/warnings", {"cursor": "1.99999999999"}),
    ("/v1/dead-letters", {"cursor": "99999999999999999999"}),
])
def test_numbers_past_the_database_types_are_400(ledger_app: LedgerApp, path: str, params: dict) -> None:  # noqa: F811
    r = httpx.get(ledger_app.url + path, params=params, headers=ledger_app.auth("supervisor"), timeout=30)
    assert r.status_code == 400 and r.json()["code"] == "invalid_parameter", r.text
