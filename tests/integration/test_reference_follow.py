"""Reference data written by one adjudicator reaches the others, and none of it can be skipped."""
from __future__ import annotations

import asyncio
import datetime as dt

from services.compose.core import build_handler
from services.nats.store import JetStreamStore
from services.policy.pack import PackSet
from services.nats.streams import ensure_ledger_stream

SECRET = b"reference-follow-secret-0123"
SEAL_KEY = b"reference-follow-seal-key-0123"


def _medins(code: str) -> bytes:
    return (b'{"msg_type":"medins","fixmedins_code":"%s","fixmedins_name":"%s","admdvs":"141002",'
            b'"designated":true,"in_province":true,"ooc_class":"I","serious_disease_designated":false}'
            % (code.encode(), code.encode()))


async def _until(predicate, timeout: float = 5.0) -> float:
    started = asyncio.get_running_loop().time()
    while not predicate():
        if asyncio.get_running_loop().time() - started > timeout:
            raise AssertionError("not within the timeout")
        await asyncio.sleep(0.01)
    return asyncio.get_running_loop().time() - started


async def test_a_hospital_recorded_by_one_process_reaches_another_by_cue_and_by_timer(fresh_nc) -> None:
    js = fresh_nc.jetstream()
    await ensure_ledger_stream(js)
    writer = JetStreamStore(js, SECRET, seal_key=SEAL_KEY)
    follower = JetStreamStore(js, SECRET, seal_key=SEAL_KEY, ref_poll_every=0.3)
    await writer.start()
    await follower.start()
    handler = build_handler(PackSet.from_dir(), writer,
                            clock=lambda: dt.datetime(2022, 3, 1, tzinfo=dt.timezone.utc))
    try:
        await handler.handle(_medins("H-CUE"))
        cued = await _until(lambda: "H-CUE" in follower.ref.reference.hospitals)
        assert cued < follower.ref.poll_every           # the cue, not the timer

        for sub in follower.ref._subs:                  # cues lost (a slow consumer on core NATS)
            await sub.unsubscribe()
        follower.ref._subs.clear()
        for code in ("H-T1", "H-T2", "H-T3"):
            await handler.handle(_medins(code))
        await _until(lambda: {"H-T1", "H-T2", "H-T3"} <= set(follower.ref.reference.hospitals))
        assert follower.ref.applied == writer.ref.applied     # read up to the same sequence, nothing skipped
    finally:
        await follower.close()
        await writer.close()
