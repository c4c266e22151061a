"""The console in the API's app, over HTTP: roles, session cookie, CSRF, languages, the same figures as the
JSON API, CSV, and the page budget and labels on every page. (The browser tests drive a real `ledger run`.)"""
from __future__ import annotations

import asyncio
import csv
import io
import shutil
from decimal import Decimal

import httpx
import pytest

from console_support import PAGE_BUDGET, csrf_of, login, parts_of, shows
from projections.runner import Projector
from readside_helpers import SECRET, checkpoints
from services.adjudicator.handler import Handler
from services.adjudicator.jetstream_store import JetStreamStore
from services.api.app import ApiDeps, create_app
from services.api.supervision import read_routers
from services.console.plugin import ConsolePlugin
from services.policy.engine import Engine
from services.policy.pack import DEFAULT_PACK_DIR, PackSet
from services.runtime.secrets import person_key
from test_read_api import FEED, TOKENS

SUP = {"Authorization": f"Bearer {TOKENS['supervisor']}"}


@pytest.fixture
async def app(env, tmp_path):
    store = JetStreamStore(env.js, SECRET)
    await store.start()
    handler = Handler(Engine(PackSet.from_dir()), store)
    for raw in FEED:
        await handler.handle(raw, source="test")
    last = (await env.js.stream_info("LEDGER")).state.last_seq
    stop = asyncio.Event()
    projector = asyncio.create_task(Projector(env.dsn, env.pool, env.js, takeover_every=0.1).run(stop))
    for _ in range(200):
        if (await checkpoints(env.pool)) and min((await checkpoints(env.pool)).values()) >= last:
            break
        await asyncio.sleep(0.02)
    archive = tmp_path / "pack-archive"
    shutil.copytree(DEFAULT_PACK_DIR, archive / "shipped-copy")
    deps = ApiDeps(submit=lambda raw, source, transport: handler.handle(raw, source), tokens=TOKENS, nc=env.nc,
                   js=env.js, db=env.pool, person_key=lambda psn: person_key(SECRET, psn),
                   extras={"projection_lag_ttl": 0, "pack_archive": archive})
    yield create_app(deps, routers=read_routers(), plugins=[ConsolePlugin(deps)])
    stop.set()
    await projector
    await store.close()


def client_of(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ledger")


async def test_root_leads_to_the_console_and_the_console_to_its_login(app) -> None:
    async with client_of(app) as c:
        r = await c.get("/")
        assert r.status_code == 302 and r.headers["location"] == "/console/"
        r = await c.get("/console/persons/API-1/2022")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=")
        assert "console_session" not in r.headers.get("set-cookie", "")      # no session before a login
        form = await c.get(r.headers["location"])
        assert form.status_code == 200 and 'name="token"' in form.text and 'type="password"' in form.text


async def test_login_sets_a_strict_httponly_session_and_logout_ends_it(app) -> None:
    async with client_of(app) as c:
        assert (await login(c, "not-a-token")).status_code == 401
        platform = await login(c, TOKENS["platform"])
        assert platform.status_code == 403 and TOKENS["platform"] not in platform.text
        form = await c.get("/console/login")
        no_csrf = await c.post("/console/login", data={"token": TOKENS["supervisor"]})
        assert no_csrf.status_code == 403 and "console_session" not in no_csrf.headers.get("set-cookie", "")
        r = await login(c, TOKENS["supervisor"], "/console/warnings")
        assert r.status_code == 303 and r.headers["location"] == "/console/warnings"
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("console_session="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert "Path=/console" in cookie
        page = await c.get("/console/warnings")
        assert page.status_code == 200 and 'id="role"' in page.text
        out = await c.post("/console/logout", data={"_csrf_token": csrf_of(page.text)})
        assert out.status_code == 303
        assert (await c.get("/console/warnings")).status_code == 303                 # back to the login
        assert "login" in form.text


async def test_an_outside_redirect_after_login_is_refused(app) -> None:
    async with client_of(app) as c:
        for target in ("https://evil.example/", "//evil.example/console/", "/v1/warnings"):
            r = await login(c, TOKENS["admin"], target)
            assert r.headers["location"] == "/console/", target


async def test_person_year_shows_the_api_figures_and_never_the_person_number(app) -> None:
    async with client_of(app) as c:
        await login(c, TOKENS["supervisor"])
        api = (await c.get("/v1/persons/API-1/years/2022", headers=SUP)).json()
        r = await c.get("/console/persons/API-1/2022")
        assert r.status_code == 200, r.text
        assert not shows(r.text, "API-1")                       # the key, never the number, on the page
        for field, value in (("cap-limit", api["cap"]["limit"]), ("cap-used", api["cap"]["used"]),
                             ("cap-remaining", api["cap"]["remaining"]),
                             ("ci-deductible", api["critical_illness"]["deductible"])):
            assert f'id="{field}">{Decimal(value):,.2f}<' in r.text, field
        assert api["person_key"] in r.text and "S-1" in r.text and "S-2" in r.text
        assert 'id="person-chain"' in r.text and "完整" in r.text                # the chain check, in zh-CN
        found = await c.get("/console/persons", params={"psn_no": "API-1"})
        assert found.status_code == 303 and found.headers["location"] == "/console/persons/API-1/2022"
        missing = await c.get("/console/persons/NOBODY-42/2022")
        assert missing.status_code == 404 and not shows(missing.text, "NOBODY-42")
        assert "NOBODY-42" not in missing.text.split('id="main"')[1]           # nor in the error itself
        assert (await c.get("/console/persons/API-1/1800")).status_code == 400


async def test_settlement_page_lists_every_line_with_its_clause(app) -> None:
    async with client_of(app) as c:
        await login(c, TOKENS["supervisor"])
        api = (await c.get("/v1/settlements/S-1", headers=SUP)).json()
        r = await c.get("/console/settlements/S-1")
        assert r.status_code == 200 and "<svg" in r.text
        for line in api["lines"]:
            assert f'data-rule="{line["rule_id"]}"' in r.text and line["clause"] in r.text
        assert f'{api["facts"]["pack"]} 版本 {api["facts"]["pack_version"]}' in r.text
        assert (await c.get("/console/settlements/NOPE")).status_code == 404


async def test_english_by_query_or_browser_language_chinese_by_default(app) -> None:
    async with client_of(app) as c:
        await login(c, TOKENS["supervisor"])
        assert "年度救助限额" in (await c.get("/console/persons/API-1/2022")).text
        en = await c.get("/console/persons/API-1/2022", headers={"Accept-Language": "en-GB,en;q=0.9"})
        assert "Annual assistance cap" in en.text and '<html lang="en">' in en.text
        r = await c.get("/console/funds", params={"lang": "en"})
        assert "Fund flows" in r.text and "console_lang=en" in r.headers["set-cookie"]
        assert "Fund flows" in (await c.get("/console/warnings")).text              # the choice is remembered


async def test_a_supervisor_sees_no_redrive_button_and_may_not_redrive(app) -> None:
    async with client_of(app) as c:
        await login(c, TOKENS["supervisor"])
        page = await c.get("/console/dead-letters")
        assert page.status_code == 200 and "not_enrolled" in page.text and "S-EARLY" in page.text
        assert "/redrive" not in page.text
        listed = (await c.get("/v1/dead-letters", params={"code": "not_enrolled"}, headers=SUP)).json()
        url = f"/console/dead-letters/{listed['dead_letters'][0]['id']}/redrive"
        assert (await c.post(url, data={"_csrf_token": csrf_of(page.text)})).status_code == 403
    async with client_of(app) as c:
        await login(c, TOKENS["admin"])
        page = await c.get("/console/dead-letters")
        assert url in page.text
        assert (await c.post(url, data={})).status_code == 403                     # no CSRF token, no redrive
        r = await c.post(url, data={"_csrf_token": csrf_of(page.text)})
        assert r.status_code == 303
        after = (await c.get("/v1/dead-letters", params={"code": "not_enrolled"}, headers=SUP)).json()
        assert after["dead_letters"][0]["redrive_state"] == "redriven"


async def test_an_audit_from_the_form_shows_its_differences_and_gives_them_as_csv(app) -> None:
    async with client_of(app) as c:
        await login(c, TOKENS["supervisor"])
        form = await c.get("/console/audits")
        assert "shipped-copy" in form.text
        bad = await c.post("/console/audits", data={"_csrf_token": csrf_of(form.text)})
        assert bad.status_code == 400 and 'id="audit-error"' in bad.text
        r = await c.post("/console/audits", data={
            "_csrf_token": csrf_of(form.text), "area": "1410", "override_pack": "linfen-2022",
            "override_path": "critical_illness_tilts[linfen.ci.tilt.tekun_dibao_returned].ratio",
            "override_value": "0.9"})
        assert r.status_code == 303, r.text
        job = r.headers["location"]
        for _ in range(200):
            page = await c.get(job)
            if 'data-status="done"' in page.text or 'data-status="failed"' in page.text:
                break
            assert 'http-equiv="refresh"' in page.text
            await asyncio.sleep(0.05)
        assert 'data-status="done"' in page.text and 'id="differences"' in page.text
        assert "linfen.ci.tilt.tekun_dibao_returned" in page.text
        got = await c.get(f"{job}/differences.csv")
        assert got.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(got.content.decode("utf-8-sig"))))
        assert rows and {r["rule_id"] for r in rows if r["kind"] == "line"} >= {"linfen.ci.tilt.tekun_dibao_returned"}
        assert all(r["clause"] for r in rows if r["kind"] == "line")
        report = await c.get(f"{job}/report")
        assert report.status_code == 200 and "print.css" in report.text
        assert job.rsplit("/", 1)[1][:12] in (await c.get("/console/audits")).text   # listed as recent


async def test_fund_flows_page_and_csv_agree_with_the_api(app) -> None:
    async with client_of(app) as c:
        await login(c, TOKENS["supervisor"])
        api = (await c.get("/v1/funds/flows", params={"area": "1410"}, headers=SUP)).json()
        page = await c.get("/console/funds", params={"area": "1410"})
        assert page.status_code == 200 and "<svg" in page.text
        for amount in api["totals"].values():
            assert f"{Decimal(amount):,.2f}" in page.text
        got = await c.get("/console/funds.csv", params={"area": "1410"})
        rows = list(csv.DictReader(io.StringIO(got.content.decode("utf-8-sig"))))
        assert [(r["month"], r["fund"], r["amount"]) for r in rows] == [
            (m["month"], m["fund"], m["amount"]) for m in api["months"]]
        assert (await c.get("/console/funds", params={"from": "2022-13"})).status_code == 400


PAGES = ["/console/", "/console/persons", "/console/persons/API-1/2022", "/console/settlements/S-1",
         "/console/audits", "/console/funds", "/console/warnings?state=all", "/console/dead-letters", "/console/login"]


async def test_every_page_is_under_budget_labels_every_field_and_loads_no_outside_asset(app) -> None:
    async with client_of(app) as c:
        await login(c, TOKENS["admin"])
        for path in PAGES:
            r = await c.get(path)
            assert r.status_code == 200, (path, r.status_code)
            parts = parts_of(r.text)
            assert parts.unlabelled() == [], (path, parts.unlabelled())
            assert all(a.startswith("/console/static/") for a in parts.assets), (path, parts.assets)
            size = len(r.content)
            for asset in parts.assets:
                size += len((await c.get(asset)).content)
            assert size < PAGE_BUDGET, (path, size)
            assert "lag" in r.text
