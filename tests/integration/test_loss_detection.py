"""Loss is detected, never absorbed (design.md §2; ADR 0010), on real nats-server and PostgreSQL.

A stream deleted and recreated under a running read side, one person's subject missing its last
commit, a forged commit: each is found, held (`unavailable`, never decided again, never dead-lettered)
and reported (/ready, the gauge, the alarm line, `GET /v1/verify`) until `restore` or `accept_loss`.
An adjudicator worker process holds on its own, without the read side.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import msgspec
import pytest
from structlog.testing import capture_logs

from events import ledger as ev
from events.upcast import decode_commit
from events.chain import seal_stored
from ledger_support import SECRET, Collector, rpc, start_worker, stop_process
from loss_support import (PLATFORM, POLL, SEAL_KEY, SUPERVISOR, Running, ledger_with_read_side, metric, projected,
                          ready, record_hospital, recreate_stream, settle_person, unavailable, until)
from projections.service import ReadSide
from events import samples as s
from services.adjudicator.store import LedgerHeld
from services.integrity.accept import AcceptRefused, accept_loss
from services.integrity.findings import ALL_CODES
from services.integrity.restore import restore
from services.integrity.state import bucket, read_state
from services.runtime.secrets import person_key
from events.subjects import PERSON_SUBJECT, STREAM
from services.nats.reads import read_subject

HOLD = POLL * 4       # restore's wait for every guard to have seen its hold


def key(psn_no: str) -> str:
    return person_key(SECRET.encode(), psn_no)


def codes(findings: list[dict]) -> set[str]:
    return {f["code"] for f in findings}


def held(run: Running, code: str = "", *, only: bool = False):
    """A check: /ready's body once it is 503 for integrity, with `code` among the findings (`only`: alone)."""
    async def check() -> dict | None:
        status, body = await ready(run.http)
        integrity = body["checks"]["integrity"]
        others = [c for c in ALL_CODES if c != code and c in integrity["detail"]]
        found = code in integrity["detail"] and not (only and others)
        return body if status == 503 and not integrity["ok"] and found else None
    return check


async def healthy(run: Running) -> bool:
    status, _ = await ready(run.http)
    return status == 200


async def decided(nc, message: dict, msg_type: str = "settlement") -> dict:
    """Send until the ledger decides (a guard sees a lifted hold within its poll); the answer."""
    async def once() -> dict | None:
        reply = await rpc(nc, s.dumps(message), msg_type)
        return None if unavailable(reply) else reply
    return await until(once, timeout=10)


async def test_a_stream_recreated_under_a_running_read_side_is_held_until_restored(
        fresh_nats, fresh_database_url: str, tmp_path: Path) -> None:
    async with ledger_with_read_side(fresh_nats, fresh_database_url, tmp_path) as run:
        await record_hospital(run.platform)
        [first] = await settle_person(run.platform, "LOSS-A", ["SA-1"])
        assert first["result"] == "settled"
        await until(lambda: projected(run))
        last = (await run.js.stream_info(STREAM)).state.last_seq
        out = await Collector().start(run.platform)

        with capture_logs() as logs:
            await recreate_stream(run.admin_js)
            body = await until(held(run, "stream_recreated"))
            # The adjudicator may first hold on its own finding (behind the checkpoint) and learn that the
            # stream was recreated from the read side's record at its next check: wait for that one.
            await until(lambda: _guard_holds(run, "stream_recreated"))
        assert "stream_recreated" in body["checks"]["integrity"]["detail"]
        alarms = [e for e in logs if e["event"] == "stream_loss_detected"]
        assert {"stream_recreated", "stream_behind_checkpoint"} <= {a["finding"] for a in alarms}
        assert {a["log_level"] for a in alarms} == {"critical"} and {a["seen_by"] for a in alarms} == {
            "read side", "adjudicator"}
        text = (await run.http.get("/metrics")).text
        assert metric(text, "ledger_stream_loss", finding="stream_recreated") == 1
        assert metric(text, "ledger_decisions_held", finding="stream_recreated") == 1
        assert metric(text, "ledger_stream_loss", finding="forged_message") == 0
        report = (await run.http.get("/v1/verify", headers=SUPERVISOR)).json()
        assert not report["ok"] and {"stream_recreated", "stream_behind_checkpoint"} <= codes(report["findings"])

        # The platform sends it again, by every transport: not decided, not dead-lettered, nothing stored.
        again = s.dumps(s.settlement("SA-1", "LOSS-A", total="60000.00"))
        assert unavailable(await rpc(run.platform, again))
        over_http = await run.http.post("/v1/messages", content=again, headers=PLATFORM)
        assert over_http.status_code == 503 and over_http.json()["reason"]["code"] == "unavailable"
        await run.platform.jetstream().publish("platform.in.settlement", again)
        assert unavailable(await rpc(run.platform, s.dumps(s.settlement("SA-NEW", "LOSS-B"))))
        assert unavailable(await rpc(run.platform, b"{not json"))                       # not even a dead letter
        assert (await run.js.stream_info(STREAM)).state.last_seq == 0
        assert not [m for m in out.bodies() if m.get("setl_id") == "SA-1"]       # the feed keeps it, in progress

        outcome = await restore(run.ledger.db, run.js, SEAL_KEY, admin_js=run.admin_js, hold_for=HOLD)
        assert outcome.done and outcome.from_read_models == last and outcome.not_restored == 0
        assert outcome.after == [] and outcome.unrestored is None
        await until(lambda: healthy(run))
        assert await decided(run.platform, s.settlement("SA-1", "LOSS-A", total="60000.00")) == {
            **first, "result": "duplicate"}                                        # the original figures
        await out.wait_for(lambda msgs: any(b"SA-1" in m.data for m in msgs), timeout=15)
        from_feed = next(b for b in out.bodies() if b.get("setl_id") == "SA-1")
        assert from_feed == {**first, "result": "duplicate"}
        report = (await run.http.get("/v1/verify", headers=SUPERVISOR)).json()
        assert report["ok"] and report["findings"] == [] and report["restores"][0]["restored_upto"] == last
        text = (await run.http.get("/metrics")).text
        assert metric(text, "ledger_stream_loss", finding="stream_recreated") == 0


async def test_a_decision_stored_on_a_stream_that_went_backwards_is_answered_unavailable(
        fresh_nats, fresh_database_url: str, tmp_path: Path) -> None:
    """Between two of the guard's checks (here: a minute apart) a reference decision, which reads no
    person, lands on the recreated stream at a sequence below one already acknowledged: it is not
    answered as decided. A new person's is not even stored: a person read from the stream is trusted
    only once the stream's info, asked after the read, shows nothing lost (`IntegrityGuard.confirm`)."""
    async with ledger_with_read_side(fresh_nats, fresh_database_url, tmp_path, guard_poll=60) as run:
        await record_hospital(run.platform)
        await settle_person(run.platform, "LOSS-A", ["SA-1"])
        await recreate_stream(run.admin_js)
        assert unavailable(await rpc(run.platform, s.dumps(s.medins("LOSS-H2")), "medins"))
        assert [f.code for f in run.ledger.guard.local.values()] == ["stream_behind_high_water"]
        assert (await run.js.stream_info(STREAM)).state.last_seq == 1        # the one stored, then refused
        assert unavailable(await rpc(run.platform, s.dumps(s.identity("LOSS-NEW")), "psn_identity"))   # all held now
        text = (await run.http.get("/metrics")).text
        assert metric(text, "ledger_decisions_held", finding="stream_behind_high_water") == 1
        assert (await run.js.stream_info(STREAM)).state.last_seq == 1        # nothing more stored


async def _guard_holds(run: Running, code: str = "") -> bool:
    whole = run.ledger.guard.whole
    return bool(whole) and (not code or code in {f.code for f in whole})


async def _guard_clear(run: Running) -> bool:
    return not run.ledger.guard.active


async def test_an_accepted_loss_is_recorded_and_the_ledger_goes_on_from_the_stream_as_it_is(
        fresh_nats, fresh_database_url: str, tmp_path: Path) -> None:
    async with ledger_with_read_side(fresh_nats, fresh_database_url, tmp_path) as run:
        await record_hospital(run.platform)
        [first] = await settle_person(run.platform, "LOSS-A", ["SA-1"])
        await until(lambda: projected(run))
        await recreate_stream(run.admin_js)
        await until(held(run))
        with pytest.raises(AcceptRefused):
            await accept_loss(run.ledger.db, run.js, SEAL_KEY, "  ")

        outcome = await accept_loss(run.ledger.db, run.js, SEAL_KEY, "disk lost on node 1; the platform resends")
        assert outcome.acceptance_id is not None and outcome.after == [] and outcome.lost_events > 0
        assert "stream_recreated" in {f.code for f in outcome.findings}
        row = await run.ledger.db.fetchrow("SELECT * FROM integrity_acceptance")
        assert row["reason"] == "disk lost on node 1; the platform resends" and row["event_seq"] == outcome.event_seq
        kept = await run.ledger.db.fetchval("SELECT count(*) FROM integrity_lost_event WHERE acceptance_id = $1",
                                            outcome.acceptance_id)
        assert kept == outcome.lost_events
        [msg] = await read_subject(run.js, "ledger.ref.integrity")
        [event] = decode_commit(msg.data).events
        assert isinstance(event, ev.LossAccepted) and "stream_recreated" in event.findings
        await until(lambda: healthy(run))
        await until(lambda: _guard_clear(run))
        # What was lost is gone: sent again, the settlement is paid again, its cap counted from zero.
        await record_hospital(run.platform)
        [again] = await settle_person(run.platform, "LOSS-A", ["SA-1"])
        assert again == first
        report = (await run.http.get("/v1/verify", headers=SUPERVISOR)).json()
        assert report["ok"] and report["acceptances"][0]["reason"] == row["reason"]


async def test_one_person_missing_their_last_commit_is_refused_alone(
        fresh_nats, fresh_database_url: str, tmp_path: Path) -> None:
    async with ledger_with_read_side(fresh_nats, fresh_database_url, tmp_path) as run:
        await record_hospital(run.platform)
        answers = await settle_person(run.platform, "LOSS-A", ["SA-1", "SA-2"], total="30000.00")
        [b1] = await settle_person(run.platform, "LOSS-B", ["SB-1"], total="30000.00")
        assert {a["result"] for a in [*answers, b1]} == {"settled"}
        await until(lambda: projected(run))
        a_last = (await read_subject(run.js, PERSON_SUBJECT.format(key("LOSS-A"))))[-1].seq
        # The stream put back from a copy that lacks LOSS-A's last commit (the rest keeps its sequences).
        await run.ledger.db.execute("DELETE FROM ledger_commit WHERE seq = $1", a_last)
        outcome = await restore(run.ledger.db, run.js, SEAL_KEY, admin_js=run.admin_js, hold_for=HOLD, force=True)
        assert outcome.not_restored == 1
        assert [(f.code, f.person_key, f.seq) for f in outcome.after] == [("person_head_missing", key("LOSS-A"), a_last)]

        body = await until(held(run, "person_head_missing", only=True))
        assert "LOSS-A" not in str(body)
        assert unavailable(await rpc(run.platform, s.dumps(s.settlement("SA-2", "LOSS-A", total="30000.00"))))
        assert unavailable(await rpc(run.platform, s.dumps(s.settlement("SA-3", "LOSS-A"))))
        assert (await decided(run.platform, s.settlement("SB-2", "LOSS-B")))["result"] == "settled"   # others go on
        text = (await run.http.get("/metrics")).text
        assert metric(text, "ledger_stream_loss", finding="person_head_missing") == 1
        assert metric(text, "ledger_decisions_held", finding="person_head_missing") == 1
        one = (await run.http.get("/v1/verify", params={"psn_no": "LOSS-A"}, headers=SUPERVISOR)).json()
        assert not one["ok"] and [f["person_key"] for f in one["findings"]] == [key("LOSS-A")]
        other = (await run.http.get("/v1/verify", params={"psn_no": "LOSS-B"}, headers=SUPERVISOR)).json()
        assert other["ok"] and other["findings"] == []

        accepted = await accept_loss(run.ledger.db, run.js, SEAL_KEY, "SA-2 was never in a copy; resent")
        assert accepted.after == []
        await until(lambda: healthy(run))
        assert (await decided(run.platform, s.settlement("SA-2", "LOSS-A", total="30000.00")))["result"] == "settled"
        assert (await decided(run.platform, s.settlement("SA-1", "LOSS-A", total="30000.00")))["result"] == "duplicate"


async def test_a_forged_commit_is_a_verify_failure_an_alarm_and_that_person_is_refused(
        fresh_nats, fresh_database_url: str, tmp_path: Path) -> None:
    async with ledger_with_read_side(fresh_nats, fresh_database_url, tmp_path) as run:
        await record_hospital(run.platform)
        await settle_person(run.platform, "LOSS-A", ["SA-1"])
        await settle_person(run.platform, "LOSS-B", ["SB-1"])
        await until(lambda: projected(run))
        # Whoever can publish can write a commit whose SHA-256 chain holds; only the ledger can seal one.
        subject = PERSON_SUBJECT.format(key("LOSS-A"))
        stored = await read_subject(run.js, subject)
        tail = decode_commit(stored[-1].data)
        facts = next(e for c in map(decode_commit, (m.data for m in stored)) for e in c.events
                     if isinstance(e, ev.SettlementFacts))
        made_up = msgspec.structs.replace(facts, setl_id="FORGED", event_id="forged", maf_pay=facts.maf_pay * 10)
        events, _, _ = seal_stored([made_up], tail.events[-1].hash)
        with capture_logs() as logs:
            ack = await run.js.publish(subject, ev.COMMIT_ENCODER.encode(ev.Commit("forged", "forged", events)))
            body = await until(held(run, "forged_message", only=True))
        seen_by = {e["seen_by"] for e in logs if e["event"] == "stream_loss_detected" and e["finding"] == "forged_message"}
        assert {"projector", "read side"} <= seen_by
        report = (await run.http.get("/v1/verify", headers=SUPERVISOR)).json()
        assert not report["ok"]
        assert [(b["seq"], b["reason"]) for b in report["breaks"]] == [(ack.seq, "forged: no seal")]
        assert [(f["code"], f["person_key"], f["seq"]) for f in report["findings"]] == [
            ("forged_message", key("LOSS-A"), ack.seq)]
        assert await run.ledger.db.fetchval("SELECT count(*) FROM settlement WHERE setl_id = 'FORGED'") == 0
        assert await run.ledger.db.fetchval("SELECT reason FROM forged_message WHERE seq = $1", ack.seq) == "no seal"
        assert metric((await run.http.get("/metrics")).text, "ledger_stream_loss", finding="forged_message") == 1

        assert unavailable(await rpc(run.platform, s.dumps(s.settlement("SA-2", "LOSS-A"))))     # refused, not folded
        assert (await rpc(run.platform, s.dumps(s.settlement("SB-2", "LOSS-B"))))["result"] == "settled"
        with pytest.raises(AcceptRefused, match="forged"):
            await accept_loss(run.ledger.db, run.js, SEAL_KEY, "not a loss")

        outcome = await restore(run.ledger.db, run.js, SEAL_KEY, admin_js=run.admin_js, hold_for=HOLD)
        assert outcome.not_restored == 1 and outcome.after == []
        await until(lambda: healthy(run))
        assert (await decided(run.platform, s.settlement("SA-2", "LOSS-A")))["result"] == "settled"
        report = (await run.http.get("/v1/verify", headers=SUPERVISOR)).json()
        assert report["ok"], report


async def test_an_adjudicator_worker_holds_by_itself_when_the_stream_is_recreated(
        fresh_nats_url: str, fresh_nc, fresh_platform_nc, fresh_admin_nc, fresh_database_url: str,
        tmp_path: Path) -> None:
    worker = await start_worker(fresh_nats_url, tmp_path, LEDGER_INTEGRITY_POLL=str(POLL))
    js = fresh_nc.jetstream()
    try:
        await record_hospital(fresh_platform_nc)
        [first] = await settle_person(fresh_platform_nc, "LOSS-W", ["SW-1"])
        read_side = await ReadSide(fresh_database_url, js, SEAL_KEY, every=POLL, page_every=0.1, round_every=0).start()
        try:
            async def caught_up() -> bool:
                last = (await js.stream_info(STREAM)).state.last_seq
                rows = await read_side.pool.fetch("SELECT seq FROM projection_checkpoint")
                return bool(rows) and all(r["seq"] == last for r in rows)
            await until(caught_up)
            await until(lambda: _published(js))
        finally:
            await read_side.close()
        # No read side runs now: the worker judges from the stream and the integrity record alone.
        await recreate_stream(fresh_admin_nc.jetstream())
        await until(lambda: _unavailable(fresh_platform_nc, s.settlement("SW-1", "LOSS-W")))
        assert (await js.stream_info(STREAM)).state.last_seq == 0
        read_side = await ReadSide(fresh_database_url, js, SEAL_KEY, every=POLL, page_every=0.1, round_every=0).start()
        try:
            outcome = await restore(read_side.pool, js, SEAL_KEY, admin_js=fresh_admin_nc.jetstream(), hold_for=HOLD)
            assert outcome.done and outcome.after == []
            assert await decided(fresh_platform_nc, s.settlement("SW-1", "LOSS-W")) == {**first, "result": "duplicate"}
        finally:
            await read_side.close()
    finally:
        stop_process(worker)
    log = worker.log_path.read_text()
    assert '"event": "stream_loss_detected"' in log and '"seen_by": "adjudicator"' in log


async def _published(js) -> bool:
    state = await read_state(await bucket(js), SEAL_KEY)
    return state is not None and state.written_by == "read side" and state.high_water > 0


async def _unavailable(nc, message: dict) -> bool:
    return unavailable(await rpc(nc, s.dumps(message)))


async def test_a_sealed_commit_published_again_is_not_folded_and_is_left_out_of_a_restore(
        fresh_nats, fresh_database_url: str, tmp_path: Path) -> None:
    async with ledger_with_read_side(fresh_nats, fresh_database_url, tmp_path) as run:
        await record_hospital(run.platform)
        await settle_person(run.platform, "LOSS-A", ["SA-1", "SA-2"], total="30000.00")
        await until(lambda: projected(run))
        subject = PERSON_SUBJECT.format(key("LOSS-A"))
        stored = await read_subject(run.js, subject)
        replayed = next(m for m in stored if b"SA-1" in m.data)          # the ledger's own bytes, seal and all
        paid = await run.ledger.db.fetchval("SELECT sum(amount) FROM settlement_line")
        ack = await run.js.publish(subject, replayed.data)
        await until(held(run, "forged_message", only=True))
        assert await run.ledger.db.fetchval("SELECT reason FROM forged_message WHERE seq = $1", ack.seq) == \
            "does not continue the person's chain"
        await until(lambda: _checkpoint_at(run, ack.seq))
        assert await run.ledger.db.fetchval("SELECT sum(amount) FROM settlement_line") == paid   # not counted twice
        report = (await run.http.get("/v1/verify", headers=SUPERVISOR)).json()
        assert [(b["seq"], b["reason"]) for b in report["breaks"]] == [(ack.seq, "previous hash does not match")]
        assert [(f["code"], f["seq"]) for f in report["findings"]] == [("forged_message", ack.seq)]
        assert unavailable(await rpc(run.platform, s.dumps(s.settlement("SA-3", "LOSS-A"))))

        outcome = await restore(run.ledger.db, run.js, SEAL_KEY, admin_js=run.admin_js, hold_for=HOLD)
        assert outcome.not_restored == 1 and outcome.after == []            # left out, a marker in its place
        await until(lambda: healthy(run))
        assert (await decided(run.platform, s.settlement("SA-3", "LOSS-A")))["result"] == "settled"
        assert (await decided(run.platform, s.settlement("SA-1", "LOSS-A", total="30000.00")))["result"] == "duplicate"
        assert (await run.http.get("/v1/verify", headers=SUPERVISOR)).json()["ok"]


async def _checkpoint_at(run: Running, seq: int) -> bool:
    rows = await run.ledger.db.fetch("SELECT seq FROM projection_checkpoint")
    return bool(rows) and min(r["seq"] for r in rows) >= seq


async def test_a_new_database_beside_a_recreated_stream_is_not_taken_for_a_new_ledger(
        fresh_nats, fresh_database_url: str, tmp_path: Path) -> None:
    """PostgreSQL and the stream lost together: the sealed record in LEDGER_INTEGRITY still remembers."""
    import asyncpg

    async with ledger_with_read_side(fresh_nats, fresh_database_url, tmp_path) as run:
        await record_hospital(run.platform)
        await settle_person(run.platform, "LOSS-A", ["SA-1"])
        await until(lambda: projected(run))
        await recreate_stream(run.admin_js)
    name = "u_" + urlsplit(fresh_database_url).path.lstrip("/")
    second = urlunsplit(urlsplit(fresh_database_url)._replace(path=f"/{name}"))
    admin = await asyncpg.connect(fresh_database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        async with ledger_with_read_side(fresh_nats, second, tmp_path) as run:
            await until(held(run, "stream_recreated"))
            assert unavailable(await rpc(run.platform, s.dumps(s.settlement("SA-1", "LOSS-A"))))
            assert {r["seq"] for r in await run.ledger.db.fetch("SELECT seq FROM projection_checkpoint")} <= {0}
            outcome = await accept_loss(run.ledger.db, run.js, SEAL_KEY, "database and stream both lost")
            assert outcome.acceptance_id is not None and outcome.after == []
            await until(lambda: healthy(run))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_a_person_read_whole_from_a_stream_that_lost_their_last_commit_is_not_decided_again(
        fresh_nats, tmp_path: Path) -> None:
    """The make chaos finding: a leader that lost a range of sequences serves a person whose last commit
    fell in it as a shorter chain that still holds. An adjudicator that had not cached that person, and
    whose guard had not polled since, read them so and paid a settlement a second time. Now a person read
    from the stream is trusted only once the stream's info, asked after the read, shows nothing lost."""
    import asyncio

    from ledger_support import running_ledger
    url = fresh_nats.url
    blk = max((fresh_nats.data_dir / "jetstream" / "LEDGER" / "streams" / STREAM).glob("msgs/*.blk"),
              key=lambda p: int(p.stem))
    async with running_ledger(url, tmp_path / "a", transports=False) as first:
        await first.handler.handle(s.dumps(s.medins()))
        for psn in ("SL-P", "SL-Q"):
            await first.handler.handle(s.dumps(s.enrolment(psn)))
        assert (await first.handler.handle(s.dumps(s.settlement("SL-1", "SL-P"))))[0].result == "settled"
        size = blk.stat().st_size
        assert (await first.handler.handle(s.dumps(s.settlement("SL-2", "SL-P"))))[0].result == "settled"
        assert (await first.handler.handle(s.dumps(s.settlement("SL-Q1", "SL-Q"))))[0].result == "settled"
    # A second adjudicator, checked at its start, then not again for an hour; it has not read SL-P.
    async with running_ledger(url, tmp_path / "b", transports=False, integrity_poll=3600) as second:
        subject = PERSON_SUBJECT.format(key("SL-P"))
        before = [m.seq for m in await read_subject(second.js, subject)]
        # The block cut short while the server was down, its index kept: SL-2's commit and what came
        # after are gone, the stream's last sequence is not (nats-server 2.15 counts them deleted).
        await asyncio.to_thread(fresh_nats.stop)
        with blk.open("r+b") as cut:
            cut.truncate(size)
        await asyncio.to_thread(fresh_nats.restart)
        after = await until(lambda: _subject_seqs(second.js, subject), timeout=15)
        assert after == before[:-1]                                    # a shorter chain that still holds
        with pytest.raises(LedgerHeld, match="stream_has_holes"):
            await second.handler.handle(s.dumps(s.settlement("SL-2", "SL-P")))
        assert await _subject_seqs(second.js, subject) == after            # nothing was stored


async def _subject_seqs(js, subject: str) -> list[int] | None:
    try:
        return [m.seq for m in await read_subject(js, subject)] or None
    except Exception:                        # reconnecting
        return None
