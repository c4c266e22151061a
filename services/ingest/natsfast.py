"""A lean NATS hot path on top of nats-py 2.16 internals: direct dispatch, cheap publishes, JetStream acks.

Why: per decision the ledger receives a message, publishes a commit to
JetStream and waits for its ack, publishes a result and acks the inbound
message. Through nats-py's public API every received message (including each
JetStream ack) goes through a subscription queue and a task switch, every
``js.publish`` creates a timer (``asyncio.wait_for``) and parses its ack with
``json.loads`` into a dataclass, and every header is checked with a regex.
Measured on the feed this was more than the decision itself (bench_nats).

What this uses of nats-py (read in its source, pinned by the tests):

* ``Client._process_msg`` hands a message to ``sub._future.set_result(msg)``
  when a subscription was made with ``future=``, before any queue. A router
  object standing in for that future receives every message synchronously in
  the read loop (`subscribe_direct`). The handler must be quick and must not
  raise (errors are logged and swallowed here).
* ``Client._send_command`` + ``Client._flush_pending`` is what ``publish`` does
  after validating; the ``PUB``/``HPUB`` lines are those of ``nats.protocol.command``.

What ``publish`` checks, `send` checks too (ADR 0012): a closed or draining
connection, ``max_payload`` (headers included, as the server counts; over it
the server would close the whole connection) and, while reconnecting, the
client's ``pending_size``. Subjects are ours (valid by construction) and
headers plain ASCII we build, so those are not re-validated. What the direct
dispatch gives up — nats-py's per-subscription pending limits — each
subscriber bounds itself: the RPC server sheds past its in-flight limit, the
feed and the projector's reader by their pull credit. tests/unit/
test_natsfast_pins.py pins every internal named here.
"""
from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import structlog
from nats.errors import (ConnectionClosedError, ConnectionDrainingError, ConnectionReconnectingError, MaxPayloadError,
                         OutboundBufferLimitError)
from nats.js.errors import APIError, NoStreamResponseError

log = structlog.get_logger(component="ledger.natsfast")

_DECODE = msgspec.json.Decoder()
EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
BATCH_ID, BATCH_SEQUENCE, BATCH_COMMIT = "Nats-Batch-Id", "Nats-Batch-Sequence", "Nats-Batch-Commit"   # ADR-50
_ENCODE = msgspec.json.Encoder()
_CRLF = b"\r\n"


class _Router:
    """Looks like the asyncio.Future of a one-reply subscription; forwards every message to `handler`."""

    __slots__ = ("handler",)

    def __init__(self, handler: Callable[[Any], None]):
        self.handler = handler

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return False

    def __bool__(self) -> bool:
        return True

    def set_result(self, msg: Any) -> None:
        try:
            self.handler(msg)
        except Exception as exc:             # never into nats-py's read loop
            log.error("dispatch_failed", subject=getattr(msg, "subject", None), error=repr(exc))


async def subscribe_direct(nc: Any, subject: str, handler: Callable[[Any], None], queue: str = "") -> Any:
    """Subscribe so that `handler(msg)` runs synchronously for each message (no queue, no task)."""
    return await nc.subscribe(subject, queue=queue, future=_Router(handler))  # type: ignore[arg-type]


async def drain_then_wait(sub: Any, tasks: set[asyncio.Task], timeout: float) -> None:
    """Undo `subscribe_direct`: take no more messages, then let those already taken finish."""
    if sub is not None:
        try:
            await sub.drain()
        except Exception:
            pass
    if tasks:
        await asyncio.wait(list(tasks), timeout=timeout)


class PullCredit:
    """What we asked a pull consumer for and it has not sent yet, and when it last spoke to us.

    Both our pull loops (the feed, the projector's reader) keep this bounded and ask again as it
    drains. A status message ends a request short: with ``Nats-Pending-Messages`` it says how much
    of it will not come; without (404/408 with nothing left, 409 paused or consumer gone) none of
    ours is outstanding any more. No sign of life for two heartbeats means the requests died with a
    connection: `lapsed` forgets them so the loop asks again.
    """

    __slots__ = ("outstanding", "heard")

    def __init__(self) -> None:
        self.outstanding = 0
        self.heard = time.monotonic()

    def delivered(self) -> None:
        self.heard = time.monotonic()
        self.outstanding = max(0, self.outstanding - 1)

    def status(self, headers: Mapping[str, str]) -> str | None:
        """Account one status message; returns the error to report (None: heartbeat or a request's end)."""
        self.heard = time.monotonic()
        status = headers["Status"]
        if status == "100":
            return None
        pending = headers.get("Nats-Pending-Messages")
        self.outstanding = max(0, self.outstanding - int(pending)) if pending is not None else 0
        return None if status in ("404", "408") else f"{status} {headers.get('Description', '')}".strip()

    def lapsed(self, heartbeat: float) -> bool:
        """Forget requests not heard of for two heartbeats; the next lapse is two heartbeats later,
        so a loop asking again each second after a reconnect does not pile requests up."""
        now = time.monotonic()
        if self.outstanding and now - self.heard > 2 * heartbeat + 1:
            self.outstanding = 0
            self.heard = now
            return True
        return False

    async def request(self, nc: Any, subject: str, inbox: str, n: int, expires: float, heartbeat: float) -> None:
        """Ask for `n` more messages (a pull request lasting `expires` seconds, beating every `heartbeat`)."""
        self.outstanding += n
        body = {"batch": n, "expires": int(expires * 1e9), "idle_heartbeat": int(heartbeat * 1e9)}
        await nc.publish(subject, _ENCODE.encode(body), reply=inbox)


def stream_sequence(msg: Any) -> int:
    """Stream sequence of a JetStream delivery: a split of the v1 ack subject
    (``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>``), else nats-py's parser."""
    tokens = msg.reply.split(".")
    return int(tokens[5]) if len(tokens) == 9 else int(msg.metadata.sequence.stream)


def delivery_count(msg: Any) -> int:
    """How many times the server has delivered this JetStream message (same layout as `stream_sequence`)."""
    tokens = msg.reply.split(".")
    return int(tokens[4]) if len(tokens) == 9 else int(msg.metadata.num_delivered)


def headers_bytes(headers: Mapping[str, str]) -> bytes:
    """NATS/1.0 header block; keys and values must be ASCII without CR/LF (ours are)."""
    parts = [b"NATS/1.0\r\n"]
    for key, value in headers.items():
        parts.append(f"{key}: {value}\r\n".encode())
    parts.append(_CRLF)
    return b"".join(parts)


def command(subject: str, payload: bytes, headers: bytes | None = None, reply: str = "") -> bytes:
    """The ``PUB``/``HPUB`` protocol line of ``nats.protocol.command``, with one copy of the payload."""
    if headers:
        return b"".join((f"HPUB {subject} {reply} {len(headers)} {len(headers) + len(payload)}\r\n".encode(),
                         headers, payload, _CRLF))
    return b"".join((f"PUB {subject} {reply} {len(payload)}\r\n".encode(), payload, _CRLF))


async def send(nc: Any, subject: str, payload: bytes, headers: bytes | None = None, reply: str = "") -> None:
    """Publish like ``nc.publish`` without re-validating what we built ourselves.

    Keeps ``publish``'s limits: an over-size message raises ``MaxPayloadError``
    before a byte is written (the server would close the whole connection on
    it), and while reconnecting the buffer is bounded by the client's
    ``pending_size`` (``OutboundBufferLimitError``).
    """
    if nc.is_closed:
        raise ConnectionClosedError
    if nc.is_draining_pubs:
        raise ConnectionDrainingError
    size = len(payload) + (len(headers) if headers else 0)
    if size > nc.max_payload:
        raise MaxPayloadError
    if not nc.is_connected and size + nc._pending_data_size > nc._max_pending_size:
        raise OutboundBufferLimitError
    nc.stats["out_msgs"] += 1
    nc.stats["out_bytes"] += len(payload)
    await nc._send_command(command(subject, payload, headers, reply))
    if nc._flush_queue is not None and nc._flush_queue.empty():
        await nc._flush_pending()


def expect_header(expected: int | None) -> bytes | None:
    return None if expected is None else headers_bytes({EXPECTED_LAST_SUBJECT_SEQ: str(expected)})


class NotConnected(ConnectionReconnectingError):
    """NATS is not connected now: nothing was sent; the caller answers ``unavailable``."""


MAX_OUTSTANDING = 128     # publishes awaiting their PubAck at once; see JetStreamPublisher


class JetStreamPublisher:
    """JetStream publishes awaiting their PubAck through one wildcard inbox, timed out by one sweeper.

    At most `max_outstanding` wait at once; the others wait their turn before they are sent. Under
    ``sync_interval: always`` the server stores a stream's messages one fsync after another, so a
    thousand publishes sent together on a slow disk (6 ms an fsync) would wait six seconds for their
    ack and time out, though they are being stored (bench_peer saw it); the timeout counts from the send.
    """

    def __init__(self, nc: Any, timeout: float = 5.0, max_outstanding: int = MAX_OUTSTANDING):
        self.nc = nc
        self.timeout = timeout
        self._turns = asyncio.Semaphore(max_outstanding)
        self._inbox = ""
        self._prefix_len = 0
        self._pending: dict[str, tuple[asyncio.Future, float]] = {}
        self._ids = itertools.count(1)
        self._sub: Any = None
        self._sweeper: asyncio.Task | None = None

    async def start(self) -> None:
        self._inbox = f"{self.nc.new_inbox()}."
        self._prefix_len = len(self._inbox)
        self._sub = await subscribe_direct(self.nc, self._inbox + "*", self._on_ack)
        self._sweeper = asyncio.create_task(self._sweep())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._sub is not None and not self.nc.is_closed:
            try:
                await self._sub.unsubscribe()
            except Exception:
                pass
        for fut, _ in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionClosedError())
        self._pending.clear()

    async def publish(self, subject: str, payload: bytes, headers: bytes | None = None) -> int:
        """Store one message; returns its stream sequence. Raises nats.js.errors.APIError as ``js.publish``.

        Refuses at once while NATS is disconnected (`NotConnected`): nats-py would buffer the
        publish until it reconnects, and the caller would wait for an ack that may never come.
        """
        if not self.nc.is_connected:
            raise NotConnected
        async with self._turns:
            if not self.nc.is_connected:
                raise NotConnected
            token = str(next(self._ids))
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            self._pending[token] = (fut, loop.time() + self.timeout)
            try:
                await send(self.nc, subject, payload, headers, self._inbox + token)
                data = await fut
            finally:
                self._pending.pop(token, None)
        ack = _DECODE.decode(data)
        error = ack.get("error")
        if error is not None:
            raise APIError.from_error(error)
        return ack["seq"]

    async def publish_batch(self, messages: list[tuple[str, bytes, int | None]]) -> int:
        """Store `messages` (subject, payload, expected last subject sequence or None) as one JetStream
        atomic batch (nats-io ADR-50): all or none, each expectation checked at commit under the stream's
        lock. Only the commit is acknowledged; returns its stream sequence (the batch's messages hold the
        sequences just before it, in order). Raises APIError as `publish` (10071 if any expectation fails).
        """
        if len(messages) == 1:
            subject, payload, expected = messages[0]
            return await self.publish(subject, payload, expect_header(expected))
        batch_id = secrets.token_hex(12)
        token = str(next(self._ids))
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending[token] = (fut, loop.time() + self.timeout)
        try:
            last = len(messages)
            for n, (subject, payload, expected) in enumerate(messages, start=1):
                headers = {BATCH_ID: batch_id, BATCH_SEQUENCE: str(n)}
                if expected is not None:
                    headers[EXPECTED_LAST_SUBJECT_SEQ] = str(expected)
                if n == last:
                    headers[BATCH_COMMIT] = "1"
                await send(self.nc, subject, payload, headers_bytes(headers), self._inbox + token if n == last else "")
            data = await fut
        finally:
            self._pending.pop(token, None)
        ack = _DECODE.decode(data)
        error = ack.get("error")
        if error is not None:
            raise APIError.from_error(error)
        return ack["seq"]

    def _on_ack(self, msg: Any) -> None:
        entry = self._pending.get(msg.subject[self._prefix_len:])
        if entry is None or entry[0].done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            entry[0].set_exception(NoStreamResponseError())
        else:
            entry[0].set_result(msg.data)

    async def _sweep(self) -> None:
        """Time out publishes past their deadline, and every one when the connection dropped.

        After a disconnect an ack may never come (the server died with the message, or
        before it); the caller answers ``unavailable`` now instead of at the deadline. The
        message may still have been stored: the store forgets that person and reloads.
        """
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(0.1, self.timeout / 4))
            now, connected = loop.time(), self.nc.is_connected
            for fut, deadline in list(self._pending.values()):
                if fut.done():
                    continue
                if not connected:
                    fut.set_exception(NotConnected())
                elif deadline < now:
                    fut.set_exception(asyncio.TimeoutError())
