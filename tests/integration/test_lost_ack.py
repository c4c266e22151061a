"""An acknowledgement lost after JetStream stored the commit: the decision is answered as decided (the store
asks the stream), not "unavailable" now and "duplicate" on the retry. Real nats-server; the publisher passes
every publish through and then drops the ack of the ones chosen, as a slow disk or a lost packet would."""
from __future__ import annotations

import asyncio
import datetime as dt

import msgspec

from events import samples as s
from services.compose.core import build_handler
from services.nats.store import JetStreamStore
from services.nats.publisher import JetStreamPublisher
from services.policy.pack import PackSet
from services.nats.streams import ensure_ledger_stream

SECRET, SEAL = b"lost-ack-secret-0123456789abcdef", b"lost-ack-seal-0123456789abcdef01"


class LosingAcks(JetStreamPublisher):
    """Stores every message; the ack of a publish on a subject in `lose` never reaches the caller."""

    def __init__(self, nc, lose: set[str]):
        super().__init__(nc)
        self.lose, self.lost = lose, 0

    async def publish(self, subject: str, payload: bytes, headers: bytes | None = None) -> int:
        seq = await super().publish(subject, payload, headers)
        if any(subject.startswith(prefix) for prefix in self.lose):
            self.lost += 1
            raise asyncio.TimeoutError
        return seq


async def test_a_stored_commit_whose_ack_was_lost_is_answered_settled(fresh_admin_nc, fresh_nc) -> None:
    await ensure_ledger_stream(fresh_admin_nc.jetstream())
    publisher = LosingAcks(fresh_nc, set())
    await publisher.start()
    store = JetStreamStore(fresh_nc.jetstream(), SECRET, seal_key=SEAL, publisher=publisher)
    await store.start()
    handler = build_handler(PackSet.from_dir(), store, clock=lambda: dt.datetime(2022, 12, 1, tzinfo=dt.timezone.utc))
    try:
        for message in (s.medins(), s.identity("ACK-1", "dibao"), s.enrolment("ACK-1")):
            await handler.handle(s.dumps(message))
        publisher.lose = {"ledger.person.", "ledger.ref.key."}       # the claim's ack and the commit's
        [result] = await handler.handle(s.dumps(s.settlement("S-ACK", "ACK-1", total="30000.00")))
        assert publisher.lost == 2
        assert result.result == "settled" and result.maf_pay > 0
        publisher.lose = set()
        store.forget("ACK-1")
        [again] = await handler.handle(s.dumps(s.settlement("S-ACK", "ACK-1", total="30000.00")))
        assert again.result == "duplicate" and msgspec.structs.replace(again, result="settled") == result
        person = await store.person("ACK-1")
        assert list(person.settlements) == ["S-ACK"]                   # stored once
    finally:
        await store.close()
        await publisher.close()
