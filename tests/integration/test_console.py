"""The console in the API's app, over HTTP: roles, session cookie, CSRF, languages, the same figures as the
JSON API, CSV, and the page budget and labels on every page. (The browser tests drive a real `ledger run`.)"""
from __future__ import annotations

import asyncio
import csv
import json
import io
from decimal import Decimal

import httpx
import pytest

from console_support import PAGE_BUDGET, csrf_of, login, parts_of, shows
from events.limits import MAX_MESSAGE_BYTES
from services.api.app import create_app
from services.api.supervision import read_routers
from services.console.plugin import ConsolePlugin
from test_read_api import TOKENS, decided

SUP = {"Authorization": f"Bearer {TOKENS['supervisor']}"}


@pytest.fixture
async def app(env, tmp_path):
    async with decided(env, tmp_path) as deps:
        yield create_app(deps, routers=read_routers(), plugins=[ConsolePlugin(deps)])


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


async def test_pages_stay_under_budget_with_ten_thousand_differences_and_a_huge_dead_letter(app, env) -> None:
    diff = {"person_key": "k" * 32, "seq": 7, "kind": "line", "key": "S-1", "fund": "assistance",
            "rule_id": "linfen.inpatient.dibao", "clause": "临汾 二(四)1 低保对象 70%, 年度最高救助限额6万元",
            "paid": "5040.00", "recomputed": "4270.00", "delta": "-770.00", "pack": "linfen-2022", "pack_version": "2022.1"}
    rows = [{**diff, "seq": i} for i in range(10_000)]
    await env.pool.execute("INSERT INTO audit_job (id, scope, status, done, total, totals, differences, finished_at) "
                           "VALUES ('big', '{\"area\": \"1410\"}', 'done', 1, 1, $1::jsonb, $2::jsonb, now())",
                           json.dumps({"compared": 10_000, "differences": 10_000, "paid": {}, "recomputed": {},
                                       "delta": {}}), json.dumps(rows))
    async with client_of(app) as c:
        await login(c, TOKENS["admin"])
        dead = await c.post("/v1/messages", content=b"{" + b"x" * 300_000, headers={
            "Authorization": f"Bearer {TOKENS['platform']}"})
        assert dead.status_code == 400 and dead.json()["reason"]["code"] == "invalid_message"
        for _ in range(200):
            listed = (await c.get("/v1/dead-letters", headers=SUP)).json()["dead_letters"]
            if any(len(d["raw"]) >= MAX_MESSAGE_BYTES for d in listed):   # kept: its first 64 KiB
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the dead letter of a 300 kB body never reached the read model")
        for path in ("/console/audits/big", "/console/audits/big?start=9950", "/console/audits/big/report",
                     "/console/dead-letters"):
            r = await c.get(path)
            assert r.status_code == 200 and len(r.content) < PAGE_BUDGET - 10_000, (path, len(r.content))
        report = await c.get("/console/audits/big/report")
        assert 'id="by-rule"' in report.text and ">10000<" in report.text           # the summary counts them all
        assert "9951–10000" in (await c.get("/console/audits/big?start=9950")).text
        csv_rows = (await c.get("/console/audits/big/differences.csv")).content.decode("utf-8-sig").splitlines()
        assert len(csv_rows) == 10_001


async def test_overview_shows_the_api_numbers_and_verifies_the_chain_on_request(app) -> None:
    async with client_of(app) as c:
        await login(c, TOKENS["supervisor"])
        numbers = (await c.get("/v1/overview", headers=SUP)).json()
        page = await c.get("/console/")
        assert f'id="decisions-today">{numbers["decisions_today"]}<' in page.text
        assert f'id="dead-letters-pending">{numbers["dead_letters_pending"]}<' in page.text
        assert "本次运行尚未校验" in page.text and "<svg" in page.text
        assert (await c.post("/console/verify", data={"_csrf_token": csrf_of(page.text)})).status_code == 303
        for _ in range(100):
            page = await c.get("/console/")
            if "校验中" not in page.text:
                break
            assert 'http-equiv="refresh"' in page.text
            await asyncio.sleep(0.05)
        state = page.text.split('id="chain-state">')[1].split("</p>")[0]
        assert "完整" in state and "1 人" in state
