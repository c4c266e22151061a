"""Reading stream LEDGER in order from a stored sequence, in batches, with backpressure.

An ordered push consumer (flow control, heartbeats, automatic reset on a gap)
is nats-py's fastest in-order read: measured ~60k msg/s against ~24k for a
pull consumer's fetch loop on the same stream. Its callback only appends to a
buffer; when the buffer is full the callback waits, flow-control replies stop,
and the server pauses — memory stays bounded however slow PostgreSQL is.
"""
from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from nats.js.api import ConsumerConfig, DeliverPolicy

from services.runtime.stream import STREAM

ALL_SUBJECTS = "ledger.>"


class Raw(NamedTuple):
    seq: int
    subject: str
    data: bytes


async def last_sequence(js: Any, stream: str = STREAM) -> int:
    return int((await js.stream_info(stream)).state.last_seq or 0)


class StreamReader:
    def __init__(self, js: Any, start_seq: int, *, stream: str = STREAM, max_batch: int = 2000,
                 high_water: int = 20_000):
        self.js, self.start_seq, self.stream = js, max(1, start_seq), stream
        self.max_batch, self.high_water = max_batch, high_water
        self._buf: list[Raw] = []
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._sub = None

    async def start(self) -> StreamReader:
        self._sub = await self.js.subscribe(
            ALL_SUBJECTS, stream=self.stream, cb=self._on_msg, ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.start_seq),
            pending_msgs_limit=4 * self.high_water, pending_bytes_limit=512 * 1024 * 1024)
        return self

    async def _on_msg(self, msg: Any) -> None:
        self._buf.append(Raw(msg.metadata.sequence.stream, msg.subject, msg.data))
        self._ready.set()
        if len(self._buf) >= self.high_water:
            self._room.clear()
            await self._room.wait()

    async def batch(self, timeout: float = 0.5) -> list[Raw]:
        """Up to `max_batch` messages in stream order; [] when none came within `timeout` seconds."""
        if not self._buf:
            self._ready.clear()
            try:      # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                return []
        out, self._buf = self._buf[:self.max_batch], self._buf[self.max_batch:]
        if len(self._buf) < self.high_water:
            self._room.set()
        return out

    async def stop(self) -> None:
        self._room.set()
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:       # connection already closed: nothing left to stop
                pass
            self._sub = None

    async def __aenter__(self) -> StreamReader:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
