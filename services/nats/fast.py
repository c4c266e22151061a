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
feed and the projector's reader by their pull credit (services/nats/pull.py). tests/unit/
test_natsfast_pins.py pins every internal named here.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from nats.errors import ConnectionClosedError, ConnectionDrainingError, MaxPayloadError, OutboundBufferLimitError

log = structlog.get_logger(component="ledger.natsfast")

EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
BATCH_ID, BATCH_SEQUENCE, BATCH_COMMIT = "Nats-Batch-Id", "Nats-Batch-Sequence", "Nats-Batch-Commit"   # ADR-50
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


