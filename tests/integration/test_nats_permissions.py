"""Who may do what on NATS: every subject class × {anonymous, platform, ledger, admin}, on the real server.

The embedded server runs deploy/nats/accounts.conf (ADR 0009) and a real
ledger answers ledger.rpc.* and pulls platform.in.> as user ``ledger``. Each
row is tried for real as each user:

* ``allowed``: the server delivered it, shown by the effect — the expected
  JetStream answer (``ok`` checks its content), the reply of the ledger, or
  the message arriving at a subscriber;
* ``refused``: the server answered ``Permissions Violation for Publish to
  "<subject>"`` / ``for Subscription to "<subject>"`` for exactly this
  subject, or, for anonymous, refused the connection (``Authorization
  Violation``);
* anything else (an answer that is not the expected one, no answer at all) is
  reported as what it was, and fails the comparison.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest

from ledger_support import running_ledger
from services.runtime.embedded import EmbeddedProcess

ALLOWED, REFUSED = "allowed", "refused"
ROLES = ("anonymous", "platform", "ledger", "admin")
PROBE = "PROBE"                      # a scratch stream the admin may destroy; LEDGER is the services' target
PERSON = "ledger.person.0123456789abcdef0123456789abcdef"


def _has(*needles: str) -> Callable[[bytes, dict], bool]:
    return lambda data, headers: all(n in data.decode(errors="replace") for n in needles) and "error" not in \
        json.loads(data or b"{}")


def _status(*codes: str) -> Callable[[bytes, dict], bool]:
    """A direct-get / pull answer: a stored message (no Status header) or one of these statuses."""
    return lambda data, headers: headers.get("Status") in (None, *codes) and headers.get("Status") != "503"


@dataclass(frozen=True)
class Pub:
    """Publish; allowed when the admin's watcher sees the message. ``{role}`` is filled in."""
    subject: str


@dataclass(frozen=True)
class Req:
    """Request (publish with a reply inbox); allowed when the answer passes ``ok``. ``{stream}`` is filled per role."""
    subject: str
    payload: bytes = b"probe"
    ok: Callable[[bytes, dict], bool] = field(default=lambda data, headers: True)


@dataclass(frozen=True)
class Sub:
    """Subscribe; allowed when a message the admin publishes on ``trigger`` arrives."""
    subject: str
    trigger: str                     # ``{role}`` is filled in, so each user's try has its own message
    queue: str = ""


CONSUMER = json.dumps({"stream_name": "LEDGER", "config": {"name": "probe-{role}", "durable_name": "probe-{role}",
                                                           "ack_policy": "explicit", "filter_subject": PERSON}})

# class -> (operation, expected outcome for anonymous, platform, ledger, admin); run in this order.
TABLE: dict[str, tuple[Any, tuple[str, str, str, str]]] = {
    "publish platform.in.x (PubAck)": (
        Req("platform.in.probe", ok=_has('"stream":"PLATFORM_IN"')), (REFUSED, ALLOWED, REFUSED, ALLOWED)),
    "request ledger.rpc.x": (
        Req("ledger.rpc.settlement", b"{not json", ok=_has('"msg_type":"rejected"')),
        (REFUSED, ALLOWED, REFUSED, ALLOWED)),
    "subscribe ledger.out.>": (Sub("ledger.out.>", "ledger.out.probe.{role}"), (REFUSED, ALLOWED, REFUSED, ALLOWED)),
    "publish ledger.out.x": (Pub("ledger.out.probe.{role}"), (REFUSED, REFUSED, ALLOWED, ALLOWED)),
    "publish ledger.person.x (append)": (
        Req(PERSON, ok=_has('"stream":"LEDGER"')), (REFUSED, REFUSED, ALLOWED, ALLOWED)),
    "publish ledger.ref.x (append)": (
        Req("ledger.ref.probe", ok=_has('"stream":"LEDGER"')), (REFUSED, REFUSED, ALLOWED, ALLOWED)),
    "publish ledger.ref.key.x": (Pub("ledger.ref.key.{role}"), (REFUSED, REFUSED, ALLOWED, ALLOWED)),
    "publish ledger.other": (Pub("ledger.other.{role}"), (REFUSED, REFUSED, REFUSED, ALLOWED)),
    "subscribe ledger.person.>": (
        Sub("ledger.person.>", "ledger.person.probe{role}"), (REFUSED, REFUSED, REFUSED, ALLOWED)),
    "subscribe ledger.rpc.> in queue ledger-adjudicator": (
        Sub("ledger.rpc.probe.q{role}", "ledger.rpc.probe.q{role}", "ledger-adjudicator"),
        (REFUSED, REFUSED, ALLOWED, ALLOWED)),
    "subscribe ledger.rpc.> outside the queue group": (
        Sub("ledger.rpc.probe.all{role}", "ledger.rpc.probe.all{role}"), (REFUSED, REFUSED, REFUSED, ALLOWED)),
    "$JS.API.INFO": (Req("$JS.API.INFO", b"", _has("account_info_response")), (REFUSED, REFUSED, ALLOWED, ALLOWED)),
    "$JS.API.STREAM.INFO.LEDGER": (
        Req("$JS.API.STREAM.INFO.LEDGER", b"", _has('"name":"LEDGER"')), (REFUSED, REFUSED, ALLOWED, ALLOWED)),
    "$JS.API.DIRECT.GET.LEDGER": (
        Req("$JS.API.DIRECT.GET.LEDGER", json.dumps({"last_by_subj": PERSON}).encode(), _status("404")),
        (REFUSED, REFUSED, ALLOWED, ALLOWED)),
    "$JS.API.STREAM.MSG.GET.LEDGER": (
        Req("$JS.API.STREAM.MSG.GET.LEDGER", json.dumps({"last_by_subj": PERSON}).encode(),
            _has('"message"')), (REFUSED, REFUSED, ALLOWED, ALLOWED)),
    "$JS.API.CONSUMER.CREATE": (
        Req("$JS.API.CONSUMER.CREATE.LEDGER.probe-{role}." + PERSON, CONSUMER.encode(), _has('"probe-')),
        (REFUSED, REFUSED, ALLOWED, ALLOWED)),
    "$JS.API.CONSUMER.MSG.NEXT": (
        Req("$JS.API.CONSUMER.MSG.NEXT.LEDGER.probe-{role}", b'{"batch":1,"no_wait":true}', _status("404", "408")),
        (REFUSED, REFUSED, ALLOWED, ALLOWED)),
    "$JS.ACK": (Pub("$JS.ACK.LEDGER.probe-{role}.1.1.1.0.0"), (REFUSED, REFUSED, ALLOWED, ALLOWED)),
    "$JS.API.CONSUMER.DELETE": (
        Req("$JS.API.CONSUMER.DELETE.LEDGER.probe-{role}", b"", _has('"success":true')),
        (REFUSED, REFUSED, ALLOWED, ALLOWED)),
    "$JS.API.STREAM.CREATE": (
        Req("$JS.API.STREAM.CREATE.NEW_{role}", b'{"name":"NEW_{role}","subjects":["new.{role}"]}',
            _has('"created"')), (REFUSED, REFUSED, REFUSED, ALLOWED)),
    "$JS.API.STREAM.UPDATE": (
        Req("$JS.API.STREAM.UPDATE.{stream}", b'{"name":"{stream}","subjects":["probe.>"],"max_age":60000000000}',
            _has('"max_age":60000000000')), (REFUSED, REFUSED, REFUSED, ALLOWED)),
    "$JS.API.STREAM.MSG.DELETE": (
        Req("$JS.API.STREAM.MSG.DELETE.{stream}", b'{"seq":1}', _has('"success":true')),
        (REFUSED, REFUSED, REFUSED, ALLOWED)),
    "$JS.API.STREAM.PURGE": (
        Req("$JS.API.STREAM.PURGE.{stream}", b"", _has('"success":true')), (REFUSED, REFUSED, REFUSED, ALLOWED)),
    "$JS.API.STREAM.DELETE": (
        Req("$JS.API.STREAM.DELETE.{stream}", b"", _has('"success":true')), (REFUSED, REFUSED, REFUSED, ALLOWED)),
}


class Client:
    """One connection and the permission errors the server sent it."""

    def __init__(self) -> None:
        self.nc: Any = None
        self.errors: list[str] = []

    async def connect(self, url: str) -> Client:
        async def on_error(exc: Exception) -> None:
            self.errors.append(str(exc))
        self.nc = await nats.connect(url, error_cb=on_error, allow_reconnect=False, connect_timeout=2)
        return self

    def refused(self, what: str, subject: str) -> bool:
        prefix = f'nats: permissions violation for {what} to "{subject.lower()}"'
        return any(e.startswith(prefix) for e in self.errors)


class Watcher:
    """The admin sees every message in account LEDGER."""

    def __init__(self, admin: Any) -> None:
        self.admin = admin
        self.seen: set[str] = set()
        self.changed = asyncio.Event()

    async def start(self) -> Watcher:
        async def on_msg(msg: Any) -> None:
            self.seen.add(msg.subject)
            self.changed.set()
        await self.admin.subscribe(">", cb=on_msg)
        await self.admin.flush()
        return self

    async def saw(self, subject: str) -> str:
        while subject not in self.seen:
            self.changed.clear()
            await self.changed.wait()
        return ALLOWED


async def _first(client: Client, what: str, subject: str, effect: Awaitable[str], timeout: float = 15.0) -> str:
    """The effect's outcome or ``refused``, whichever the server gives first (an -ERR may follow a PONG)."""
    task = asyncio.ensure_future(effect)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while loop.time() < deadline:
            if client.refused(what, subject):
                return REFUSED
            if task.done():
                return task.result()
            await asyncio.sleep(0.01)
        return "neither delivered nor refused"
    finally:
        task.cancel()


async def attempt(client: Client, op: Any, watcher: Watcher, role: str) -> str:
    nc = client.nc
    stream = PROBE if role == "admin" else "LEDGER"
    subject = op.subject.format(role=role, stream=stream)
    if isinstance(op, Pub):
        await nc.publish(subject, b"probe")
        return await _first(client, "publish", subject, watcher.saw(subject))
    if isinstance(op, Sub):
        received: asyncio.Queue = asyncio.Queue()
        sub = await nc.subscribe(subject, queue=op.queue, cb=received.put)
        await nc.flush()
        trigger = op.trigger.format(role=role)

        async def arrives() -> str:
            await watcher.admin.publish(trigger, b"probe")
            while (await received.get()).subject != trigger:
                pass
            return ALLOWED
        try:
            return await _first(client, "subscription", subject, arrives())
        finally:
            await sub.unsubscribe()
    payload = op.payload.decode().replace("{role}", role).replace("{stream}", stream).encode()
    inbox = nc.new_inbox()
    answers: asyncio.Queue = asyncio.Queue()
    sub = await nc.subscribe(inbox, cb=answers.put)

    async def answered() -> str:
        await nc.publish(subject, payload, reply=inbox)
        msg = await answers.get()
        headers = msg.headers or {}
        return ALLOWED if op.ok(msg.data, headers) else f"answered {headers.get('Status', '')} {msg.data[:200]!r}"
    try:
        return await _first(client, "publish", subject, answered())
    finally:
        await sub.unsubscribe()


async def test_every_subject_class_for_every_nats_user(fresh_nats: EmbeddedProcess, tmp_path: Path) -> None:
    admin = await Client().connect(fresh_nats.url_for("admin"))
    js = admin.nc.jetstream()
    await js.add_stream(name=PROBE, subjects=["probe.>"])
    await js.publish("probe.1", b"one")
    await js.publish(PERSON, b"a stored event")        # something for the direct / message gets to find
    watcher = await Watcher(admin.nc).start()
    clients: dict[str, Client | None] = {}
    refusals: dict[str, str] = {}
    for role in ROLES:
        url = fresh_nats.anonymous_url if role == "anonymous" else fresh_nats.url_for(role)
        try:
            clients[role] = admin if role == "admin" else await Client().connect(url)
        except Exception as exc:                        # noqa: BLE001 - recorded, compared below
            clients[role], refusals[role] = None, str(exc)
    assert refusals == {"anonymous": "nats: 'Authorization Violation'"}

    async with running_ledger(fresh_nats.url, tmp_path):
        actual: dict[str, tuple[str, ...]] = {}
        for name, (op, _) in TABLE.items():
            row = []
            for role in ROLES:
                client = clients[role]
                row.append(REFUSED if client is None else await attempt(client, op, watcher, role))
            actual[name] = tuple(row)
        assert actual == {name: expected for name, (_, expected) in TABLE.items()}

        info = await js.stream_info("LEDGER")             # the services could not touch it
        assert info.config.deny_delete and info.config.deny_purge and info.config.max_age == 0
        assert info.state.messages >= 3
        platform = clients["platform"]
        assert platform is not None
        reply = await platform.nc.request("ledger.rpc.settlement", b"{still not json", timeout=5)
        assert json.loads(reply.data)["msg_type"] == "rejected"     # and the ledger is still answering
    for client in clients.values():
        if client is not None:
            await client.nc.close()


@pytest.mark.parametrize("role", ["platform", "ledger", "admin", "sys"])
async def test_a_wrong_password_is_refused(fresh_nats: EmbeddedProcess, role: str) -> None:
    url = fresh_nats.url_for(role).replace(f":{fresh_nats.users[role].password}@", ":not-the-password@")
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(url, allow_reconnect=False, connect_timeout=2)
