"""The read API end to end: messages through the real Handler and JetStream store, the projector,
then every read, audit, verify and redrive route over HTTP, with their 400/401/403/404 answers."""
from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from decimal import Decimal

import pytest
import httpx

from projections.runner import Projector
from services.compose.core import build_handler
from services.nats.store import JetStreamStore
from services.api.app import ApiDeps, create_app
from services.api.supervision import read_routers
from services.audit import job
from services.policy.pack import DEFAULT_PACK_DIR, PackSet
from services.runtime.secrets import person_key
from readside_helpers import SEAL_KEY, SECRET, checkpoints

TOKENS = {"platform": "tok-platform", "supervisor": "tok-supervisor", "admin": "tok-admin"}
SUP = {"Authorization": "Bearer tok-supervisor"}
ADMIN = {"Authorization": "Bearer tok-admin"}


def _m(**fields) -> bytes:
    return json.dumps(fields).encode()


def _settlement(setl_id: str, psn: str, total: int, med_type: str = "21", day: str = "2022-03-09") -> bytes:
    return _m(msg_type="settlement", setl_id=setl_id, mdtrt_id=f"M-{setl_id}", psn_no=psn, admdvs="141002",
              insutype="390", med_type=med_type, fixmedins_code="H1", begndate=day, enddate=day,
              setl_time=f"{day}T10:00:00+08:00", dise_codg="J18.9", medfee_sumamt=str(total),
              fulamt_ownpay_amt="0", inscp_scp_amt=str(total), hifp_pay=str(total // 2),
              chronic_mgmt=None if med_type == "21" else "inpatient_managed")


FEED = [
    _m(msg_type="medins", fixmedins_code="H1", fixmedins_name="H1", admdvs="141002", designated=True,
       in_province=True, ooc_class=None, serious_disease_designated=False),
    _settlement("S-EARLY", "API-1", 3000),                                # before the enrolment: a dead letter
    _m(msg_type="psn_identity", psn_no="API-1", admdvs="141002", status="dibao", action="grant",
       begndate="2021-06-01", source_dept="民政", doc_no="D1"),
    _m(msg_type="enrolment", psn_no="API-1", admdvs="141002", brdy="1960-01-01", year=2022, insutype="390",
       contribution_std="320", enrol_date="2022-01-05", in_normal_period=True),
    _settlement("S-1", "API-1", 50000),
    _settlement("S-2", "API-1", 4000, med_type="14", day="2022-05-02"),
    b"{not json",
]


@contextlib.asynccontextmanager
async def decided(env, tmp_path):
    """FEED decided by the real Handler into JetStream and projected: the ApiDeps a read app is built on."""
    store = JetStreamStore(env.js, SECRET, seal_key=SEAL_KEY)
    await store.start()
    handler = build_handler(PackSet.from_dir(), store)
    for raw in FEED:
        await handler.handle(raw, source="test")
    last = (await env.js.stream_info("LEDGER")).state.last_seq
    stop = asyncio.Event()
    projector = asyncio.create_task(Projector(env.dsn, env.pool, env.js, takeover_every=0.1, seal_key=SEAL_KEY).run(stop))
    for _ in range(200):
        if (await checkpoints(env.pool)) and min((await checkpoints(env.pool)).values()) >= last:
            break
        await asyncio.sleep(0.02)
    archive = tmp_path / "pack-archive"
    shutil.copytree(DEFAULT_PACK_DIR, archive / "shipped-copy")
    yield ApiDeps(submit=lambda raw, source, transport: handler.handle(raw, source),
                  dead_letter=lambda raw, source, code, why, transport: handler.dead_letter(raw, source, code, why),
                  tokens=TOKENS, nc=env.nc, js=env.js, db=env.pool, person_key=lambda psn: person_key(SECRET, psn),
                  seal_key=SEAL_KEY, projection_lag_ttl=0, pack_archive=archive)
    stop.set()
    await projector
    await store.close()


@pytest.fixture
async def api(env, tmp_path):
    async with decided(env, tmp_path) as deps:
        app = create_app(deps, routers=read_routers())
        # httpx on this loop (Litestar's test client runs the app on a thread of its own, away from the pool's loop)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ledger") as client:
            yield client


def _error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code and response.json()["message"]


async def test_person_year(api) -> None:
    r = await api.get("/v1/persons/API-1/years/2022", headers=SUP)
    assert r.status_code == 200, r.text
    assert r.headers["X-Projection-Lag"] == "0"
    body = r.json()
    assert body["person_key"] == person_key(SECRET, "API-1") and "API-1" not in r.text
    assert body["status_applied"] == "dibao" and body["projection_lag"] == 0
    assert body["cap"]["limit"] == "60000.00"
    used = Decimal(body["cap"]["used"])
    assert used > 0 and Decimal(body["cap"]["remaining"]) == Decimal(60000) - used
    assert body["critical_illness"]["deductible"] == "5000.00" and body["critical_illness"]["progress"] == "1"
    assert body["inpatient"]["count"] == 1 and body["outpatient"]["count"] == 1
    assert {x["rule_id"] for x in body["rules"]} >= {"linfen.ci.tilt.tekun_dibao_returned"}
    _error(await api.get("/v1/persons/API-1/years/2021", headers=SUP), 404, "not_found")
    _error(await api.get("/v1/persons/NOBODY/years/2022", headers=SUP), 404, "not_found")
    _error(await api.get("/v1/persons/API-1/years/99999", headers=SUP), 400, "invalid_parameter")
    assert (await api.get("/v1/persons/API-1/years/2022")).status_code == 401
    assert (await api.get("/v1/persons/API-1/years/2022", headers={"Authorization": "Bearer tok-platform"})
            ).status_code == 403


async def test_person_events_pages_and_filters(api) -> None:
    r = await api.get("/v1/persons/API-1/events", headers=SUP)
    assert r.status_code == 200 and r.headers["X-Projection-Lag"] == "0"
    events = r.json()["events"]
    assert [e["type"] for e in events][:2] == ["status_granted", "enrolment_recorded"]
    assert all(e["prev_hash"] == p["hash"] for p, e in zip(events, events[1:]))      # one chain, in order
    assert events[0]["payload"]["status"] == "dibao"
    first = await api.get("/v1/persons/API-1/events", params={"limit": 2}, headers=SUP)
    rest = await api.get("/v1/persons/API-1/events", params={"cursor": first.json()["next_cursor"]}, headers=SUP)
    assert first.json()["events"] + rest.json()["events"] == events and rest.json()["next_cursor"] is None
    stays = await api.get("/v1/persons/API-1/events", params={"type": "hospital_stay_settled_v2", "year": 2022},
                          headers=SUP)
    assert [e["payload"]["setl_id"] for e in stays.json()["events"]] == ["S-1"]
    # The flat facts' old tag names the same type (rows projected before ADR 0017 still carry it).
    flat = await api.get("/v1/persons/API-1/events", params={"type": "hospital_stay_settled", "year": 2022},
                         headers=SUP)
    assert flat.json()["events"] == stays.json()["events"]
    _error(await api.get("/v1/persons/API-1/events", params={"type": "bogus"}, headers=SUP), 400, "invalid_parameter")
    _error(await api.get("/v1/persons/API-1/events", params={"limit": 0}, headers=SUP), 400, "invalid_parameter")
    _error(await api.get("/v1/persons/API-1/events", params={"cursor": "x"}, headers=SUP), 400, "invalid_parameter")
    _error(await api.get("/v1/persons/API-1/events", params={"year": "abc"}, headers=SUP), 400, "invalid_parameter")
    _error(await api.get("/v1/persons/NOBODY/events", headers=SUP), 404, "not_found")


async def test_settlement_funds_warnings(api) -> None:
    r = await api.get("/v1/settlements/S-1", headers=SUP)
    assert r.status_code == 200 and r.headers["X-Projection-Lag"] == "0"
    body = r.json()
    assert body["facts"]["status"] == "dibao" and body["facts"]["medfee_sumamt"] == "50000.00"
    funds = {line["fund"] for line in body["lines"]}
    assert funds == {"critical_illness", "assistance"}
    assert all(line["rule_id"] and line["clause"] for line in body["lines"])
    assert sum(Decimal(x["amount"]) for x in body["lines"] if x["fund"] == "assistance") == Decimal(
        body["facts"]["maf_pay"])
    _error(await api.get("/v1/settlements/NOPE", headers=SUP), 404, "not_found")

    flows = (await api.get("/v1/funds/flows", params={"area": "1410", "from": "2022-01", "to": "2022-12"},
                           headers=SUP)).json()
    assert {m["month"] for m in flows["months"]} == {"2022-01", "2022-03", "2022-05"}
    assert flows["totals"]["critical_illness"] == body["facts"]["hifmi_pay"]
    assert (await api.get("/v1/funds/flows", params={"area": "63"}, headers=SUP)).json()["months"] == []
    for bad in ({"from": "2022-13"}, {"area": "abc"}, {"from": "2022-05", "to": "2022-01"}):
        _error(await api.get("/v1/funds/flows", params=bad, headers=SUP), 400, "invalid_parameter")

    warnings = (await api.get("/v1/warnings", params={"area": "1410", "year": 2022}, headers=SUP)).json()
    assert [w["setl_id"] for w in warnings["warnings"]] == ["S-1"]
    assert warnings["warnings"][0]["code"] and warnings["warnings"][0]["clause"]
    assert warnings["warnings"][0]["withdrawn"] is False
    _error(await api.get("/v1/warnings", params={"limit": 5000}, headers=SUP), 400, "invalid_parameter")
    _error(await api.get("/v1/warnings", params={"state": "gone"}, headers=SUP), 400, "invalid_parameter")

    # The platform cancels S-1: its warning no longer stands, and says so instead of vanishing.
    cancel = {"msg_type": "settlement_cancel", "setl_id": "S-1", "psn_no": "API-1",
              "cancel_time": "2022-06-01T09:00:00+08:00"}
    r = await api.post("/v1/messages", json=cancel, headers={"Authorization": f"Bearer {TOKENS['platform']}"})
    assert r.status_code == 200 and r.json()["result"] == "reversed", r.text
    for _ in range(200):
        if (await api.get("/v1/warnings", params={"area": "1410"}, headers=SUP)).json()["warnings"] == []:
            break
        await asyncio.sleep(0.02)
    withdrawn = (await api.get("/v1/warnings", params={"state": "withdrawn"}, headers=SUP)).json()["warnings"]
    assert [(w["setl_id"], w["withdrawn"]) for w in withdrawn] == [("S-1", True)]
    assert withdrawn[0]["withdrawn_at"].startswith("2022-06-01T01:00:00")
    both = (await api.get("/v1/warnings", params={"state": "all"}, headers=SUP)).json()["warnings"]
    assert both == withdrawn


async def test_dead_letters_and_redrive(api) -> None:
    listed = (await api.get("/v1/dead-letters", headers=SUP)).json()["dead_letters"]
    assert {d["code"] for d in listed} == {"not_enrolled", "invalid_message"}
    early = next(d for d in listed if d["code"] == "not_enrolled")
    assert early["redrive_state"] == "pending" and '"S-EARLY"' in early["raw"]
    url = f"/v1/dead-letters/{early['id']}/redrive"
    assert (await api.post(url, headers=SUP)).status_code == 403                  # admins redrive
    r = await api.post(url, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "settled" and r.json()["ok"] and r.json()["results"][0]["setl_id"] == "S-EARLY"
    again = (await api.get("/v1/dead-letters", params={"code": "not_enrolled"}, headers=SUP)).json()
    assert again["dead_letters"][0]["redrive_state"] == "redriven"
    assert len(again["dead_letters"][0]["redrives"]) == 1
    _error(await api.post("/v1/dead-letters/nope/redrive", headers=ADMIN), 404, "not_found")
    _error(await api.get("/v1/dead-letters", params={"state": "odd"}, headers=SUP), 400, "invalid_parameter")


async def test_audits_verify_and_projections(api) -> None:
    r = await api.post("/v1/audits", json={"psn_no": "API-1"}, headers=SUP)
    assert r.status_code == 202, r.text
    audit_id = r.json()["id"]
    assert "API-1" not in r.text
    for _ in range(100):
        body = (await api.get(f"/v1/audits/{audit_id}", headers=SUP)).json()
        if body["status"] in ("done", "failed"):
            break
        await asyncio.sleep(0.05)
    assert body["status"] == "done" and body["differences"] == [] and body["totals"]["compared"] >= 3
    what_if = await api.post("/v1/audits", headers=SUP, json={
        "area": "1410", "overrides": {"linfen-2022": {"critical_illness_tilts[linfen.ci.tilt.tekun_dibao_returned]"
                                                      ".ratio": "0.9"}}})
    assert what_if.status_code == 202
    for _ in range(100):
        body = (await api.get(f"/v1/audits/{what_if.json()['id']}", headers=SUP)).json()
        if body["status"] in ("done", "failed"):
            break
        await asyncio.sleep(0.05)
    assert body["status"] == "done", body
    assert {d["rule_id"] for d in body["differences"] if d["kind"] == "line"} >= {"linfen.ci.tilt.tekun_dibao_returned"}
    archived = await api.post("/v1/audits", headers=SUP, json={"psn_no": "API-1", "what_if_dir": "shipped-copy"})
    assert archived.status_code == 202, archived.text
    for _ in range(100):
        body = (await api.get(f"/v1/audits/{archived.json()['id']}", headers=SUP)).json()
        if body["status"] in ("done", "failed"):
            break
        await asyncio.sleep(0.05)
    assert body["status"] == "done" and body["totals"]["what_if"] and body["differences"] == [], body
    for bad in ({}, {"area": "x1"}, {"psn_no": "A", "from": "2022-05-01", "to": "2022-01-01"}, {"what": 1},
                {"psn_no": "A", "overrides": {"linfen-2022": {"nope": "1"}}}):
        assert (await api.post("/v1/audits", json=bad, headers=SUP)).status_code == 400, bad
    for path in (str(DEFAULT_PACK_DIR), "../pack-archive", "..", "no-such-set", "shipped-copy/../shipped-copy"):
        for field in ("pack_dir", "what_if_dir"):     # names in the archive, never server paths
            r = await api.post("/v1/audits", json={"psn_no": "API-1", field: path}, headers=SUP)
            _error(r, 400, "invalid_parameter")
            assert str(DEFAULT_PACK_DIR) not in r.text or path == str(DEFAULT_PACK_DIR)
    _error(await api.get("/v1/audits/nope", headers=SUP), 404, "not_found")

    verify = (await api.get("/v1/verify", headers=SUP)).json()
    assert verify["ok"] is True and verify["persons"] == 1 and verify["first_break"] is None
    one = (await api.get("/v1/verify", params={"psn_no": "API-1"}, headers=SUP)).json()
    assert one["ok"] is True and one["persons"] == 1 and one["events"] == verify["events"]
    _error(await api.get("/v1/verify", params={"psn_no": "NOBODY"}, headers=SUP), 404, "not_found")
    _error(await api.get("/v1/verify", params={"psn_no": " "}, headers=SUP), 400, "invalid_parameter")

    projections = {p["name"]: p for p in (await api.get("/v1/projections", headers=SUP)).json()}
    assert set(projections) == {"claims", "audit_trail", "dead_letters"}
    assert all(p["lag"] == 0 for p in projections.values())


async def test_openapi_documents_the_read_routes(api) -> None:
    r = await api.get("/schema/openapi.json")
    assert r.status_code == 200, r.text
    paths = r.json()["paths"]
    for path in ("/v1/persons/{psn_no}/years/{year}", "/v1/persons/{psn_no}/events", "/v1/settlements/{setl_id}",
                 "/v1/funds/flows", "/v1/warnings", "/v1/dead-letters", "/v1/dead-letters/{dead_letter_id}/redrive",
                 "/v1/audits", "/v1/audits/{audit_id}", "/v1/verify", "/v1/projections", "/v1/overview"):
        assert path in paths, path


async def test_an_audit_whose_process_stopped_is_reported_failed_not_running(api, env, monkeypatch) -> None:
    """A job row is only finished by the process that runs it: silence or a shutdown must show."""
    await env.pool.execute("INSERT INTO audit_job (id, scope, status, started_at, heartbeat_at) VALUES "
                           "('silent', '{}', 'running', now() - interval '10 minutes', now() - interval '2 minutes')")
    body = (await api.get("/v1/audits/silent", headers=SUP)).json()
    assert body["status"] == "failed" and body["error"].startswith("abandoned: the process running it stopped")
    assert body["finished_at"] is not None

    await env.pool.execute("INSERT INTO audit_job (id, scope, status, heartbeat_at) VALUES "
                           "('beating', '{}', 'running', now() - interval '5 seconds')")
    assert (await api.get("/v1/audits/beating", headers=SUP)).json()["status"] == "running"

    async def endless_audit(*args, **kwargs):       # an audit still replaying when the API stops
        await asyncio.Event().wait()

    monkeypatch.setattr(job, "run_audit", endless_audit)
    audit_id = (await api.post("/v1/audits", json={"area": "1410"}, headers=SUP)).json()["id"]
    for _ in range(100):
        if (await api.get(f"/v1/audits/{audit_id}", headers=SUP)).json()["status"] == "running":
            break
        await asyncio.sleep(0.02)
    for task in list(job._RUNNING):           # what asyncio.run does to it when the API shuts down
        task.cancel()
    await asyncio.gather(*job._RUNNING, return_exceptions=True)
    body = (await api.get(f"/v1/audits/{audit_id}", headers=SUP)).json()
    assert body["status"] == "failed" and body["error"].startswith("interrupted: the process running it stopped")


async def test_overview_counts_decisions_warnings_and_waiting_dead_letters(api) -> None:
    r = await api.get("/v1/overview", headers=SUP)
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["X-Projection-Lag"] == "0" and body["projection_lag"] == 0
    assert body["decisions_today"] == body["decisions_this_year"] == len(FEED)     # one commit per message
    assert body["warnings_active"] == 1 and body["dead_letters_pending"] == 2 and body["dead_letters_failed"] == 0
    listed = (await api.get("/v1/dead-letters", params={"code": "not_enrolled"}, headers=SUP)).json()
    assert (await api.post(f"/v1/dead-letters/{listed['dead_letters'][0]['id']}/redrive", headers=ADMIN)).json()["ok"]
    assert (await api.get("/v1/overview", headers=SUP)).json()["dead_letters_pending"] == 1
    assert (await api.get("/v1/overview", headers={"Authorization": "Bearer tok-platform"})).status_code == 403
