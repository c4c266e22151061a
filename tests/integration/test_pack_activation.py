"""Packs in force are recorded on the stream once per (id, version, digest), whoever starts first."""
import asyncio
import datetime as dt

from services.nats.pack_activation import activate_packs, activated
from services.policy.pack import PackSet
from services.nats.streams import ensure_ledger_stream

NOW = dt.datetime(2022, 1, 1, tzinfo=dt.timezone.utc)
SEAL_KEY = b"pack-activation-seal-key-0123"


async def test_packs_are_activated_once_even_by_concurrent_starts(fresh_nats_url):
    import nats

    nc = await nats.connect(fresh_nats_url)
    try:
        js = nc.jetstream()
        await ensure_ledger_stream(js)
        packs = PackSet.from_dir()
        first = await asyncio.gather(*(activate_packs(js, packs, NOW, seal_key=SEAL_KEY) for _ in range(3)))
        assert sorted(p.id for batch in first for p in batch) == ["linfen-2022", "qinghai-2022"]
        assert await activate_packs(js, packs, NOW, seal_key=SEAL_KEY) == []
        seen, last = await activated(js)
        assert {(p.id, p.version, p.digest) for p in packs.packs} == seen and last >= 1
    finally:
        await nc.close()
