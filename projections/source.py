"""Reading stream LEDGER in order from a stored sequence, in bounded batches.

A pull consumer (ephemeral, no acks) fetched one batch ahead: memory is at most
two batches, however slow PostgreSQL is. Not an ordered push consumer, although
nats-py reads faster that way (~60k msg/s against ~24k here): its flow control
does not stop the server while the callback is busy (measured: a stalled
callback had the whole 200 MB stream queued in the client), and past the
client's pending limit nats-py drops messages after it has recorded their
sequence, so the ordered consumer does not notice the gap.

LEDGER has no deletes and no limits, so its sequences are contiguous: when every
subject of the stream is under `ledger.`, a jump in sequence means a lost
message and raises `StreamGap` (the caller restarts from its checkpoint).
"""
from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.runtime.stream import STREAM

ALL_SUBJECTS = "ledger.>"


class Raw(NamedTuple):
    seq: int
    subject: str
    data: bytes


class StreamGap(RuntimeError):
    """A sequence went missing between two reads: nothing after it may be folded."""


async def last_sequence(js: Any, stream: str = STREAM) -> int:
    return int((await js.stream_info(stream)).state.last_seq or 0)


class StreamReader:
    def __init__(self, js: Any, start_seq: int, *, stream: str = STREAM, max_batch: int = 2000):
        self.js, self.start_seq, self.stream, self.max_batch = js, max(1, start_seq), stream, max_batch
        self._sub: Any = None
        self._next: asyncio.Task | None = None
        self._last = self.start_seq - 1
        self._contiguous = False

    async def start(self) -> StreamReader:
        info = await self.js.stream_info(self.stream)
        self._contiguous = all(s.startswith("ledger.") for s in info.config.subjects or [])
        self._sub = await self.js.pull_subscribe(
            ALL_SUBJECTS, stream=self.stream,
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                  opt_start_seq=self.start_seq, inactive_threshold=120.0, mem_storage=True))
        return self

    async def _fetch(self, timeout: float) -> list[Raw]:
        try:
            msgs = await self._sub.fetch(self.max_batch, timeout=timeout)
        except TimeoutError:
            return []
        return [Raw(m.metadata.sequence.stream, m.subject, m.data) for m in msgs]

    async def batch(self, timeout: float = 0.5) -> list[Raw]:
        """Up to `max_batch` messages in stream order; [] when none came within `timeout` seconds."""
        if self._next is None:
            self._next = asyncio.ensure_future(self._fetch(timeout))
        # shielded: a cancelled caller must not cancel nats-py's fetch, whose 3.11 `wait_for` can swallow
        # the cancellation and leave the caller waiting forever; stop() ends the fetch instead
        out = await asyncio.shield(self._next)
        self._next = None
        if out:
            self._next = asyncio.ensure_future(self._fetch(timeout))     # read ahead while the caller works
            if self._contiguous:
                for before, raw in zip((self._last, *(r.seq for r in out)), out):
                    if raw.seq != before + 1:
                        raise StreamGap(f"stream {self.stream}: expected sequence {before + 1}, got {raw.seq}")
            self._last = out[-1].seq
        return out

    async def stop(self) -> None:
        if self._next is not None:
            self._next.cancel()
            await asyncio.wait({self._next}, timeout=2.0)     # never hang on it: it ends by its own timeout
            self._next = None
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
