"""Reading stream LEDGER in order from a stored sequence, in bounded batches.

An ephemeral pull consumer (no acks, in memory) whose pull requests we send
ourselves, answered on an inbox whose messages are taken straight from
nats-py's read loop (`natsfast.subscribe_direct`): no queue, task switch or
ack-subject parser per message, which made nats-py's ``fetch`` cost ~45 µs a
message (bench_projections). Memory is bounded: at most two batches are
buffered or requested at any time, however slow PostgreSQL is. Not an ordered
push consumer: its flow control does not stop the server while a callback is
busy (a stalled callback had the whole 200 MB stream queued in the client),
and past the client's pending limit nats-py drops messages after recording
their sequence, so the ordered consumer does not notice the gap.

LEDGER has no deletes and no limits, so its sequences are contiguous: when every
subject of the stream is under `ledger.`, a jump in sequence means a lost
message and raises `StreamGap` (the caller restarts from its checkpoint).
"""
from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import ServiceUnavailableError

from events.subjects import STREAM
from services.nats.fast import stream_sequence, subscribe_direct
from services.nats.pull import PullCredit

ALL_SUBJECTS = "ledger.>"
HEARTBEAT = 2.0          # seconds: the server's sign of life while a pull request waits for messages


class Raw(NamedTuple):
    seq: int
    subject: str
    data: bytes


class StreamGap(RuntimeError):
    """A sequence went missing between two reads: nothing after it may be folded."""


class ReadFailed(RuntimeError):
    """The server ended our pull requests with an error (consumer deleted, stream gone, ...)."""


async def last_sequence(js: Any, stream: str = STREAM) -> int:
    return int((await js.stream_info(stream)).state.last_seq or 0)


async def read_upto(js: Any, last: int, *, stream: str = STREAM, timeout: float = 5.0, held: int | None = None,
                    progress: Callable[[int, int], None] | None = None) -> AsyncIterator[list[Raw]]:
    """Batches of every message from sequence 1 to `last`, in order: the one whole-stream pass that
    `ledger verify` and the digests share. Sequences the stream no longer holds are passed over (`held`,
    the stream's message count, says when all it holds has come). A stream that stops delivering before
    then raises TimeoutError. A read the server ends (a 503 while an R3 cluster moves a leader, or for a
    consumer not yet running) is taken up again after the last message read, `RESUMES` times at most."""
    if last <= 0:
        return
    read = seq = failures = 0
    while seq < last and (held is None or read < held):
        try:
            async with StreamReader(js, seq + 1, stream=stream, allow_gaps=True) as reader:
                while seq < last and (held is None or read < held):
                    batch = await reader.batch(timeout=timeout)
                    if not batch:
                        raise TimeoutError(f"stream {stream} stopped delivering at sequence {seq} of {last}")
                    failures = 0
                    seq = batch[-1].seq
                    kept = batch if seq <= last else [raw for raw in batch if raw.seq <= last]
                    read += len(kept)
                    if kept:
                        yield kept
                    if progress is not None:
                        progress(min(seq, last), last)
        except (ReadFailed, ServiceUnavailableError):
            failures += 1
            if failures > RESUMES:
                raise
            await asyncio.sleep(0.5 * failures)


RESUMES = 5          # read_upto: reads the server ended, taken up again in a row


class StreamReader:
    def __init__(self, js: Any, start_seq: int, *, stream: str = STREAM, max_batch: int = 2000,
                 allow_gaps: bool = False):
        self.js, self.start_seq, self.stream, self.max_batch = js, max(1, start_seq), stream, max_batch
        self.allow_gaps = allow_gaps       # `ledger verify` counts gaps instead of stopping at the first
        self._nc = js._nc
        self._consumer: str | None = None
        self._sub: Any = None
        self._buffer: collections.deque[Raw] = collections.deque()
        self._arrived = asyncio.Event()
        self._credit = PullCredit()
        self._pull_subject = ""
        self._inbox = ""
        self._failed: str | None = None
        self._last = self.start_seq - 1
        self._contiguous = False

    async def start(self) -> StreamReader:
        info = await self.js.stream_info(self.stream)
        self._contiguous = all(s.startswith("ledger.") for s in info.config.subjects or [])
        consumer = await self.js.add_consumer(self.stream, ConsumerConfig(
            ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.start_seq,
            filter_subject=ALL_SUBJECTS, inactive_threshold=120.0, mem_storage=True))
        self._consumer = consumer.name
        self._pull_subject = f"{self.js._prefix}.CONSUMER.MSG.NEXT.{self.stream}.{consumer.name}"
        self._inbox = self._nc.new_inbox()
        self._sub = await subscribe_direct(self._nc, self._inbox, self._on_msg)
        await self._top_up()
        return self

    def _on_msg(self, msg: Any) -> None:
        """In nats-py's read loop, for every delivery and status on our inbox: buffer, account, wake."""
        headers = msg.headers
        if headers and "Status" in headers:
            error = self._credit.status(headers)
            if error is not None:
                self._failed = error
        else:
            self._credit.delivered()
            self._buffer.append(Raw(stream_sequence(msg), msg.subject, msg.data))
        self._arrived.set()

    async def _top_up(self) -> None:
        """Keep buffered + requested near two batches: the server streams while the caller works."""
        free = 2 * self.max_batch - self._credit.outstanding - len(self._buffer)
        if free >= self.max_batch:
            await self._credit.request(self._nc, self._pull_subject, self._inbox, free, 30.0, HEARTBEAT)

    async def batch(self, timeout: float = 0.5) -> list[Raw]:
        """Up to `max_batch` messages in stream order; [] when none came within `timeout` seconds."""
        if not self._buffer:
            self._arrived.clear()
            try:
                async with asyncio.timeout(timeout):
                    while not self._buffer and self._failed is None:
                        await self._arrived.wait()
                        self._arrived.clear()
            except TimeoutError:
                pass
        if self._failed is not None:
            raise ReadFailed(f"stream {self.stream}: the server ended our reads: {self._failed}")
        self._credit.lapsed(HEARTBEAT)              # requests that died with a connection are asked again
        n = min(len(self._buffer), self.max_batch)
        out = [self._buffer.popleft() for _ in range(n)]
        await self._top_up()
        if out:
            if self._contiguous and not self.allow_gaps:
                for before, raw in zip((self._last, *(r.seq for r in out)), out):
                    if raw.seq != before + 1:
                        raise StreamGap(f"stream {self.stream}: expected sequence {before + 1}, got {raw.seq}")
            self._last = out[-1].seq
        return out

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:       # connection already closed: nothing left to stop
                pass
        if self._consumer is not None:
            try:                    # else the server drops it after `inactive_threshold`
                await self.js.delete_consumer(self.stream, self._consumer)
            except Exception:
                pass
            self._consumer = None

    async def __aenter__(self) -> StreamReader:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
