"""Replies carry everything (integration.md §2 "Results that cause adjustments"): a status recognised late
answers, over HTTP and request/reply alike, with the complete adjustments it caused; each is also published
on ledger.out.settlement_adjustment."""
from __future__ import annotations

import json
from pathlib import Path

import httpx

from ledger_support import Collector, rpc, running_ledger
from events import samples as s
from services.api.app import ApiDeps, create_app

TOKENS = {"platform": "tok-platform", "supervisor": "tok-supervisor", "admin": "tok-admin"}
AUTH = {"Authorization": "Bearer tok-platform"}


def late_case(psn: str) -> tuple[list[tuple[dict, str]], dict]:
    """A stay of 2022-08-05 decided with no status, then dibao from 2022-08-01 (policy.md §12):
    in scope 40,000, basic 24,000 → 大病 3,600 then 8,800 (+5,200); assistance 0.70 × 7,200 = 5,040."""
    stay = s.settlement(f"LATE-{psn}", psn, total="40000.00", ooc="0", day="2022-08-05")
    stay.update(inscp_scp_amt="40000.00", hifp_pay="24000.00")
    return ([(s.enrolment(psn), "enrolment"), (stay, "settlement")],
            s.identity(psn, "dibao", begndate="2022-08-01"))


async def test_a_late_grant_answers_with_its_adjustments_on_every_transport(
        fresh_nats_url: str, fresh_platform_nc, tmp_path: Path) -> None:
    async with running_ledger(fresh_nats_url, tmp_path) as ledger:
        deps = ApiDeps(submit=ledger.adjudicator.submit, tokens=TOKENS, metrics=ledger.metrics,
                       publish_extra=ledger.publish_extra, nc=ledger.nc)
        out = await Collector().start(fresh_platform_nc, "ledger.out.settlement_adjustment")
        await rpc(fresh_platform_nc, s.dumps(s.medins()), "medins")
        transport = httpx.ASGITransport(app=create_app(deps))
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as http:
            setup, grant = late_case("BY-HTTP")
            for body, _ in setup:
                assert (await http.post("/v1/messages", content=s.dumps(body), headers=AUTH)).status_code == 200
            by_http = (await http.post("/v1/messages", content=s.dumps(grant), headers=AUTH)).json()
        setup, grant = late_case("BY-RPC")
        for body, msg_type in setup:
            await rpc(fresh_platform_nc, s.dumps(body), msg_type)
        by_rpc = await rpc(fresh_platform_nc, s.dumps(grant), "psn_identity")
        await out.wait_for(lambda msgs: len(msgs) >= 2)
    for reply, psn in ((by_http, "BY-HTTP"), (by_rpc, "BY-RPC")):
        assert (reply["msg_type"], reply["result"]) == ("identity_result", "recorded")
        [adjustment] = reply["adjustments"]
        assert (adjustment["msg_type"], adjustment["setl_id"]) == ("settlement_adjustment", f"LATE-{psn}")
        assert (adjustment["hifmi_pay"], adjustment["maf_pay"]) == ("5200.00", "5040.00")
        assert [l["fund"] for l in adjustment["lines"]] == ["critical_illness", "assistance"]
        assert adjustment["cap"] == {"limit": "60000.00", "used": "5040.00", "remaining": "54960.00"}
    published = {json.loads(m.data)["setl_id"]: json.loads(m.data) for m in out.msgs}
    assert published == {"LATE-BY-HTTP": by_http["adjustments"][0], "LATE-BY-RPC": by_rpc["adjustments"][0]}
