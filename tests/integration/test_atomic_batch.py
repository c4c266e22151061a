"""What JetStream atomic batches (nats-io ADR-50) really do on the server the ledger ships (2.15), as
`services.nats.publisher.JetStreamPublisher.publish_batch` sends them: all or nothing, each expectation checked."""
from __future__ import annotations

import pytest
from nats.js.api import StreamConfig
from nats.js.errors import APIError

from services.nats.publisher import JetStreamPublisher
from services.nats.streams import WRONG_LAST_SEQUENCE


async def test_a_batch_is_stored_whole_or_not_at_all(fresh_admin_nc) -> None:
    js = fresh_admin_nc.jetstream()
    await js.add_stream(StreamConfig(name="BATCH", subjects=["b.>"], allow_atomic=True))
    publisher = JetStreamPublisher(fresh_admin_nc)
    await publisher.start()
    try:
        last = await publisher.publish_batch([("b.person.1", b"c1", 0), ("b.key.1", b"k1", 0), ("b.person.2", b"c2", 0)])
        assert last == 3                                   # the ack names the last; the others precede it
        with pytest.raises(APIError) as refused:           # one stale expectation refuses every message
            await publisher.publish_batch([("b.person.3", b"c3", 0), ("b.key.1", b"k1-again", 0)])
        assert refused.value.err_code == WRONG_LAST_SEQUENCE
        state = (await js.stream_info("BATCH")).state
        assert (state.messages, state.last_seq) == (3, 3)
        assert await publisher.publish_batch([("b.person.1", b"c1-next", 1)]) == 4   # one message: a plain publish
    finally:
        await publisher.close()
