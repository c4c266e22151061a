"""Signed digests against a real stream: an operator with full NATS access — and the ledger's secrets —
rewrites one person's history so that its chain and seals still verify, and the digest a supervisor kept
names that person (ADR 0011)."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import msgspec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from events import ledger as ev
import nats

from events.chain import encode_sealed, seal
from events.upcast import decode_commit
from ledger_support import REPO, SEAL_SECRET, SECRET, rpc, running_ledger, settings_for
from projections.source import last_sequence, read_upto
from projections.verify import verify_stream
from events import samples as s
from services.api.app import ApiDeps, create_app
from services.api.supervision import read_routers
from services.audit.digest import DECODER, check, issue
from services.runtime.signing import signing_key
from events.subjects import STREAM
from services.nats.streams import ensure_ledger_stream

PERSONS = ["DG-1", "DG-2", "DG-3"]
SEAL_KEY = SEAL_SECRET.encode()
TOKENS = {"platform": "tok-p", "supervisor": "tok-s", "admin": "tok-a"}


async def _feed(server, data_dir: Path) -> dict[str, str]:
    """Decisions through the running ledger (real JetStream store), sent as the platform: a hospital, and
    per person a status, an enrolment and two settlements that pay 大病 and 救助."""
    nc = await nats.connect(server.url_for("platform"))
    try:
        return await _decide(server.url, nc, data_dir)
    finally:
        await nc.close()


async def _decide(nats_url: str, nc, data_dir: Path) -> dict[str, str]:
    async with running_ledger(nats_url, data_dir) as ledger:
        assert (await rpc(nc, s.dumps(s.medins()), "medins"))["result"] == "recorded"
        for n, psn in enumerate(PERSONS):
            await rpc(nc, s.dumps(s.identity(psn, "dibao")), "psn_identity")
            await rpc(nc, s.dumps(s.enrolment(psn)), "enrolment")
            for k in range(2):
                settled = await rpc(nc, s.dumps(s.settlement(f"{psn}-{k}", psn, total=str(40000 + 5000 * n))))
                assert settled["result"] == "settled"
        return {psn: ledger.person_key(psn) for psn in PERSONS}


async def _rewrite(js, victim_subject: str | None, delta: Decimal = Decimal("100.00")) -> None:
    """What an operator with full NATS access can do: delete LEDGER, create it again, and publish every
    message again in order, the victim's with one payment raised by `delta` and every hash of the victim's
    chain recomputed and sealed again so that the chain itself still verifies. `js`: as the NATS admin."""
    stored = [raw async for batch in read_upto(js, await last_sequence(js)) for raw in batch]
    await js.delete_stream(STREAM)
    await ensure_ledger_stream(js)
    head, changed = "", False
    for raw in stored:
        data = raw.data
        if raw.subject == victim_subject:
            commit = decode_commit(raw.data)
            events = []
            for event in commit.events:
                if not changed and isinstance(event, ev.AssistancePaid) and event.amount > 0:
                    event, changed = msgspec.structs.replace(event, amount=event.amount + delta), True
                events.append(event)
            sealed, head = seal(events, head)
            data = encode_sealed(SEAL_KEY, raw.subject, msgspec.structs.replace(commit, events=sealed))
        ack = await js.publish(raw.subject, data)
        assert ack.seq == raw.seq                       # the same sequences: nothing else gives it away
    assert changed or victim_subject is None


async def _ledger(env: dict[str, str], *args: str) -> tuple[int, bytes, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.cli.main", *args, env=env, cwd=REPO,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out, err.decode()


async def test_a_digest_names_the_person_whose_history_was_rewritten(fresh_nats, fresh_nc, fresh_platform_nc,
                                                                     fresh_admin_nc, tmp_path) -> None:
    keys = await _feed(fresh_nats, tmp_path)
    js = fresh_nc.jetstream()
    key = signing_key(settings_for(tmp_path))
    digest = await issue(js, key, seal_key=SEAL_KEY)
    last = await last_sequence(js)
    assert digest.upto == last and digest.key_id == key.key_id
    assert {f"ledger.person.{k}" for k in keys.values()} <= {h.subject for h in digest.heads}
    assert any(h.subject.startswith("ledger.ref.") for h in digest.heads)          # packs and the hospital
    assert not any(psn in msgspec.json.encode(digest).decode() for psn in PERSONS)

    untouched = await check(js, digest, key.public, seal_key=SEAL_KEY)
    assert untouched.ok and untouched.differences == [] and not untouched.recreated

    # The history goes on: a digest at the old sequence is the same, and the kept one still holds.
    async with running_ledger(fresh_nats.url, tmp_path):
        await rpc(fresh_platform_nc, s.dumps(s.identity("DG-LATE", "tekun")), "psn_identity")
    assert await last_sequence(js) > last
    assert (await issue(js, key, last, seal_key=SEAL_KEY)).digest == digest.digest
    assert (await check(js, digest, key.public, seal_key=SEAL_KEY)).ok

    # Recreated with exactly the same history: still the same digest (and said to be recreated).
    admin = fresh_admin_nc.jetstream()
    await _rewrite(admin, None)
    same = await check(js, digest, key.public, seal_key=SEAL_KEY)
    assert same.ok and same.recreated

    victim = f"ledger.person.{keys['DG-2']}"
    await _rewrite(admin, victim)
    assert (await verify_stream(js, seal_key=SEAL_KEY)).ok      # the forged chain verifies on its own ...
    report = await check(js, digest, key.public, seal_key=SEAL_KEY)   # ... but not against the kept digest
    assert not report.ok and report.signature_ok and report.heads_ok and report.recreated
    assert [(d.subject, d.person_key, d.kind) for d in report.differences] == [(victim, keys["DG-2"], "changed")]
    assert report.first_difference == report.differences[0]
    assert keys["DG-2"] in report.problems[-1] and "DG-2" not in msgspec.json.encode(report).decode()


async def test_ledger_digest_and_verify_digest_on_the_command_line(fresh_nats, fresh_nc, fresh_admin_nc,
                                                                   tmp_path) -> None:
    keys = await _feed(fresh_nats, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "NATS_", "DATABASE_"))}
    env.update(NATS_URL=fresh_nats.url, LEDGER_DATA_DIR=str(tmp_path), LEDGER_PERSON_KEY_SECRET=SECRET,
               LEDGER_SEAL_SECRET=SEAL_SECRET)
    kept, public = tmp_path / "kept-digest.json", tmp_path / "kept-key.json"
    code, _, err = await _ledger(env, "digest", "--out", str(kept))
    assert code == 0, err
    code, out, err = await _ledger(env, "digest", "--key")
    assert code == 0, err
    public.write_bytes(out)
    digest = DECODER.decode(kept.read_bytes())
    assert json.loads(out)["key_id"] == digest.key_id and digest.upto == await last_sequence(fresh_nc.jetstream())

    code, out, err = await _ledger(env, "verify", "--digest", str(kept), "--public-key", str(public), "--json")
    assert code == 0 and json.loads(out)["ok"], err

    # A supervisor's own check, from ADR 0011 alone (no code of the ledger's): the digest over the heads,
    # and the Ed25519 signature over the signed text.
    body, pem = json.loads(kept.read_bytes()), json.loads(public.read_bytes())["pem"]
    lines = "".join(f"{h['subject']} {h['seq']} {h['head']}\n" for h in body["heads"])
    assert hashlib.sha256(lines.encode()).hexdigest() == body["digest"]
    text = "claims-ledger digest v1\n" + "".join(f"{k}={'' if body[k] is None else body[k]}\n" for k in (
        "stream", "stream_created", "upto", "subjects", "algorithm", "digest", "key_id", "issued_at"))
    load_pem_public_key(pem.encode()).verify(base64.b64decode(body["signature"]), text.encode())   # raises if not

    forged = tmp_path / "forged-signature.json"           # a digest whose signature is not the ledger's
    body = json.loads(kept.read_bytes())
    body["upto"] -= 1
    forged.write_text(json.dumps(body))
    code, out, _ = await _ledger(env, "verify", "--digest", str(forged), "--json")
    assert code == 1 and json.loads(out)["signature_ok"] is False
    body = json.loads(kept.read_bytes())                  # heads edited to fit a rewritten stream
    body["heads"][0]["head"] = "0" * 64
    forged.write_text(json.dumps(body))
    code, out, _ = await _ledger(env, "verify", "--digest", str(forged), "--json")
    report = json.loads(out)
    assert code == 1 and report["signature_ok"] is True and report["heads_ok"] is False

    await _rewrite(fresh_admin_nc.jetstream(), f"ledger.person.{keys['DG-1']}")
    code, out, err = await _ledger(env, "verify", "--digest", str(kept), "--public-key", str(public), "--json")
    report = json.loads(out)
    assert code == 1 and [d["person_key"] for d in report["differences"]] == [keys["DG-1"]]
    code, _, err = await _ledger(env, "verify", "--digest", str(kept))           # the table names them too
    assert code == 1 and keys["DG-1"] in err and "DG-1 " not in err


async def test_get_digest_over_http(fresh_nats, fresh_nc, tmp_path) -> None:
    keys = await _feed(fresh_nats, tmp_path)
    js = fresh_nc.jetstream()
    deps = ApiDeps(submit=None, tokens=TOKENS, nc=fresh_nc, js=js, settings=settings_for(tmp_path),
                   seal_key=SEAL_KEY)
    sup = {"Authorization": "Bearer tok-s"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(deps, routers=read_routers())),
                                 base_url="http://ledger") as http:
        r = await http.get("/v1/digest", headers=sup)
        assert r.status_code == 200, r.text
        digest = DECODER.decode(r.content)
        k = (await http.get("/v1/digest/key", headers=sup)).json()
        assert k["key_id"] == digest.key_id == signing_key(settings_for(tmp_path)).key_id
        assert (await check(js, digest, signing_key(settings_for(tmp_path)).public, seal_key=SEAL_KEY)).ok
        part = DECODER.decode((await http.get("/v1/digest", params={"upto": 3}, headers=sup)).content)
        assert part.upto == 3 and max(h.seq for h in part.heads) == 3 and part.subjects == len(part.heads)
        for bad in ({"upto": 0}, {"upto": digest.upto + 1}, {"upto": "x"}):
            r = await http.get("/v1/digest", params=bad, headers=sup)
            assert r.status_code == 400 and r.json()["code"] == "invalid_parameter", (bad, r.text)
        assert (await http.get("/v1/digest", headers={"Authorization": "Bearer tok-p"})).status_code == 403

        # A forged append (a wrong predecessor) is a break: no digest is signed over it.
        commit = decode_commit((await js.get_last_msg(STREAM, f"ledger.person.{keys['DG-3']}")).data)
        forged, _ = seal(commit.events, "f" * 64)
        await js.publish(f"ledger.person.{keys['DG-3']}",
                         ev.COMMIT_ENCODER.encode(msgspec.structs.replace(commit, events=forged)))
        r = await http.get("/v1/digest", headers=sup)
        assert r.status_code == 409 and r.json()["code"] == "chain_broken" and keys["DG-3"] in r.json()["message"]
        assert (await http.get("/v1/digest", params={"upto": digest.upto}, headers=sup)).status_code == 200
