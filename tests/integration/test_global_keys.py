"""Keys are global (integration.md §2): one setl_id / grant_id is paid once, whichever person sends it and
however many adjudicators decide at once. Real worker processes on a real nats-server."""
from __future__ import annotations

import asyncio
from pathlib import Path

from events import ledger as ev
from ledger_support import SECRET, person_from_stream, rejected_events, rpc, start_worker, stop_process
from events import samples as s
from services.runtime.secrets import person_key


def key(psn_no: str) -> str:
    return person_key(SECRET.encode(), psn_no)


async def test_two_persons_racing_for_one_setl_id_give_exactly_one_settled(
        fresh_nats_url: str, fresh_nc, fresh_platform_nc, tmp_path: Path) -> None:
    workers = [await start_worker(fresh_nats_url, tmp_path) for _ in range(2)]
    pairs = 50
    try:
        await rpc(fresh_platform_nc, s.dumps(s.medins()), "medins")
        for psn in ("TWIN-A", "TWIN-B"):
            await rpc(fresh_platform_nc, s.dumps(s.identity(psn, "dibao")), "psn_identity")
            await rpc(fresh_platform_nc, s.dumps(s.enrolment(psn)), "enrolment")
        bodies = [s.dumps(s.settlement(f"SHARED-{i:02d}", psn, total="9000.00", ooc="0"))
                  for i in range(pairs) for psn in ("TWIN-A", "TWIN-B")]
        replies = await asyncio.gather(*(rpc(fresh_platform_nc, b, timeout=30) for b in bodies))
        again = await rpc(fresh_platform_nc, bodies[0], timeout=30)       # a resend by its first sender, or not
    finally:
        codes = [stop_process(w) for w in workers]
    assert codes == [0, 0]
    by_setl: dict[str, list[dict]] = {}
    for r in replies:
        by_setl.setdefault(r["setl_id"], []).append(r)
    assert len(by_setl) == pairs
    for setl_id, answers in by_setl.items():
        outcomes = sorted((a["result"], (a.get("reason") or {}).get("code")) for a in answers)
        assert outcomes == [("rejected", "setl_id_conflict"), ("settled", None)], (setl_id, answers)
    assert again["result"] in ("duplicate", "rejected")
    js = fresh_nc.jetstream()
    stored: list[str] = []
    for psn in ("TWIN-A", "TWIN-B"):
        _, commits = await person_from_stream(js, key(psn), psn)
        stored.extend(e.setl_id for c in commits for e in c.events if isinstance(e, ev.SettlementFacts))
    assert sorted(stored) == sorted(by_setl)                      # each paid once, under one person
    dead = [e for e in await rejected_events(js) if e.code == "setl_id_conflict"]
    assert len(dead) >= pairs                                     # every refusal kept as a dead letter


async def test_a_grant_id_is_paid_once_across_persons(fresh_nats_url: str, fresh_platform_nc, tmp_path: Path) -> None:
    worker = await start_worker(fresh_nats_url, tmp_path)
    try:
        for psn in ("G-A", "G-B"):
            await rpc(fresh_platform_nc, s.dumps(s.enrolment(psn)), "enrolment")
        grant = {"msg_type": "tilted_grant", "grant_id": "GR-1", "admdvs": s.AREA, "year": 2022,
                 "amount": "1000.00", "approval_no": "APR-1", "approved_on": "2022-09-01"}
        first = await rpc(fresh_platform_nc, s.dumps({**grant, "psn_no": "G-A"}), "tilted_grant")
        second = await rpc(fresh_platform_nc, s.dumps({**grant, "psn_no": "G-B"}), "tilted_grant")
        repeat = await rpc(fresh_platform_nc, s.dumps({**grant, "psn_no": "G-A"}), "tilted_grant")
    finally:
        assert stop_process(worker) == 0
    assert (first["result"], first["granted"]) == ("settled", "1000.00")
    assert (second["result"], second["reason"]["code"]) == ("rejected", "grant_id_conflict")
    assert repeat["result"] == "duplicate"
