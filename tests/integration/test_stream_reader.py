"""The projector's reader: every message once, in order, in bounded batches, or a loud gap."""
from __future__ import annotations

import pytest
from nats.js.api import StreamConfig

from projections.source import StreamGap, StreamReader


async def _stream(js, unique: str, n: int) -> str:
    """A stream shaped like LEDGER (every subject under `ledger.`) but deletable, with `n` messages (``js``: admin)."""
    name = f"READER_{unique}"
    await js.add_stream(StreamConfig(name=name, subjects=[f"ledger.r{unique}.>"]))
    for i in range(1, n + 1):
        await js.publish(f"ledger.r{unique}.p{i % 7}", b"m%d" % i)
    return name


async def test_reads_everything_in_order_in_bounded_batches_from_any_start(js, admin_js, unique: str) -> None:
    stream = await _stream(admin_js, unique, 2500)
    seen = []
    async with StreamReader(js, 1, stream=stream, max_batch=300) as reader:
        while len(seen) < 2500:
            batch = await reader.batch(timeout=5)
            assert batch and len(batch) <= 300
            assert len(reader._buffer) + reader._credit.outstanding <= 600     # two batches at most, whatever the pace
            seen.extend(batch)
        assert await reader.batch(timeout=0.2) == []                  # the end: nothing more, no error
    assert [r.seq for r in seen] == list(range(1, 2501))
    assert seen[41].data == b"m42" and seen[41].subject == f"ledger.r{unique}.p0"
    async with StreamReader(js, 2001, stream=stream, max_batch=300) as reader:
        assert (await reader.batch(timeout=5))[0].seq == 2001
    assert (await js.stream_info(stream)).state.consumer_count == 0  # each reader removed its consumer


async def test_a_missing_sequence_is_a_gap_not_a_skip(js, admin_js, unique: str) -> None:
    stream = await _stream(admin_js, unique, 10)
    await admin_js.delete_msg(stream, 4)
    async with StreamReader(js, 1, stream=stream, max_batch=100) as reader:
        with pytest.raises(StreamGap, match="expected sequence 4, got 5"):
            while True:
                assert await reader.batch(timeout=5)
