"""Pins the nats-py internals that services/nats/ (fast.py, publisher.py) relies on, so an upgrade fails here, loudly.

Each test exercises the internal on a real (unconnected) `nats.aio.client.Client`,
not a stand-in: if nats-py renames or reorders one of them, natsfast would
silently lose messages or limits, and these fail first.
"""
from __future__ import annotations

import asyncio
import importlib.metadata
import inspect

import pytest
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.errors import ConnectionClosedError, MaxPayloadError, OutboundBufferLimitError
from nats.protocol import command as proto

from services.nats.publisher import NotConnected
from services.nats.fast import _Router, command, headers_bytes, send

CHECKED_VERSIONS = ("2.16.0",)     # natsfast was read against these; add a version only after these pass on it


def test_nats_py_is_a_version_natsfast_was_checked_against() -> None:
    assert importlib.metadata.version("nats-py") in CHECKED_VERSIONS, (
        "nats-py changed: re-read Client._process_msg/_send_command/_flush_pending and natsfast.send, "
        "run these tests, then add the version to CHECKED_VERSIONS")


async def test_process_msg_hands_a_message_to_sub_future_set_result_before_any_queue() -> None:
    nc = Client()
    got = []
    sub = Subscription(nc, 7, "ledger.rpc.*", future=_Router(got.append))  # type: ignore[arg-type]
    nc._subs[7] = sub
    await nc._process_msg(7, b"ledger.rpc.settlement", b"_INBOX.x", b"payload", b"")
    assert [(m.subject, m.reply, m.data) for m in got] == [("ledger.rpc.settlement", "_INBOX.x", b"payload")]
    assert sub._pending_queue.qsize() == 0                    # not queued: no pending limit applies
    assert nc.stats["in_msgs"] == 1 and nc.stats["in_bytes"] == len(b"payload")
    headers = b"NATS/1.0\r\nStatus: 100\r\n\r\n"
    await nc._process_msg(7, b"s", b"", b"", headers)          # status messages (pull heartbeats) too
    assert got[-1].headers == {"Status": "100"}
    assert "sub._future.set_result(msg)" in inspect.getsource(Client._process_msg)


async def test_send_command_buffers_and_flush_pending_is_what_kicks_the_flusher() -> None:
    nc = Client()
    nc._max_pending_size = 1024
    await nc._send_command(b"PUB a  1\r\nx\r\n")
    assert nc._pending == [b"PUB a  1\r\nx\r\n"] and nc._pending_data_size == len(nc._pending[0])
    assert inspect.iscoroutinefunction(Client._flush_pending)
    assert "_flush_queue" in vars(nc) and nc._flush_queue is None   # created by connect()
    assert set(nc.stats) >= {"in_msgs", "in_bytes", "out_msgs", "out_bytes", "reconnects"}
    source = inspect.getsource(Client._flush_pending)
    assert "self._flush_queue.put(future)" in source and "if not self.is_connected" in source


@pytest.mark.parametrize("headers", [None, headers_bytes({"Nats-Expected-Last-Subject-Sequence": "41"})])
@pytest.mark.parametrize("reply", ["", "_INBOX.abc.7"])
def test_command_is_the_wire_format_of_nats_protocol_command(headers: bytes | None, reply: str) -> None:
    payload = b'{"msg_type":"settlement"}'
    expected = (proto.hpub_cmd("ledger.person.k", reply, headers, payload) if headers
                else proto.pub_cmd("ledger.person.k", reply, payload))
    assert command("ledger.person.k", payload, headers, reply) == expected


def test_headers_bytes_parse_back_as_nats_py_reads_them() -> None:
    nc = Client()
    raw = headers_bytes({"Ledger-Error": "unavailable", "Nats-Msg-Id": "m-1"})
    assert asyncio.run(nc._process_headers(raw)) == {"Ledger-Error": "unavailable", "Nats-Msg-Id": "m-1"}


async def test_send_keeps_publish_limits() -> None:
    nc = Client()
    nc._max_payload = 16
    with pytest.raises(MaxPayloadError):                      # headers count toward the limit, as the server counts
        await send(nc, "s", b"x" * 10, b"NATS/1.0\r\n\r\n" + b"h" * 4)
    nc._max_payload, nc._max_pending_size = 1024, 8
    with pytest.raises(OutboundBufferLimitError):              # disconnected, the buffer is bounded
        await send(nc, "s", b"x" * 9)
    nc._status = Client.CLOSED
    with pytest.raises(ConnectionClosedError):
        await send(nc, "s", b"x")
    assert NotConnected.__mro__[1].__name__ == "ConnectionReconnectingError"
