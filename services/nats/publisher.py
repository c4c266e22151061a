"""JetStream publishes on the fast path (services/nats/fast.py): one inbox for every PubAck, bounded in flight."""
from __future__ import annotations

import asyncio
import itertools
import secrets
from typing import Any

import msgspec
from nats.errors import ConnectionClosedError, ConnectionReconnectingError
from nats.js.errors import APIError, NoStreamResponseError

from services.nats.fast import (BATCH_COMMIT, BATCH_ID, BATCH_SEQUENCE, EXPECTED_LAST_SUBJECT_SEQ, expect_header,
                                headers_bytes, send, subscribe_direct)

_DECODE = msgspec.json.Decoder()


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
        return _stored_at(data)

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
        return _stored_at(data)

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


def _stored_at(ack: bytes) -> int:
    """The stream sequence a PubAck gives; raises its error as ``js.publish`` does."""
    found = _DECODE.decode(ack)
    error = found.get("error")
    if error is not None:
        raise APIError.from_error(error)
    return found["seq"]
