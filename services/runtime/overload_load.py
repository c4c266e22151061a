"""The load `ledger overload` sends: settlements over request/reply, closed loop to measure what the
ledger decides, open loop at a multiple of that, every reply counted on one wildcard inbox."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

from events import samples as s

PERSONS = 200


def bodies(prefix: str) -> Iterator[bytes]:
    templates = [s.dumps(s.settlement("@ID@", s.psn_no_of(i, "OVL-"), total="3000.00", ooc="0")) for i in range(PERSONS)]
    n = 0
    while True:
        yield templates[n % PERSONS].replace(b"@ID@", f"{prefix}{n}".encode())
        n += 1


class Replies:
    """Every reply on one wildcard inbox, taken straight from the read loop; classified on arrival."""

    def __init__(self, nc: Any) -> None:
        self.nc, self.inbox = nc, nc.new_inbox()
        self.pending: dict[str, float] = {}
        self.counts = {"settled": 0, "unavailable": 0, "timed_out": 0, "other": 0}
        self.answered = asyncio.Event()

    async def start(self) -> Replies:
        from services.nats.fast import subscribe_direct

        await subscribe_direct(self.nc, self.inbox + ".*", self._on_reply)
        return self

    def _on_reply(self, msg: Any) -> None:
        if self.pending.pop(msg.subject, None) is None:
            return                                          # already counted as timed out
        data = msg.data
        if b'"result":"settled"' in data or b'"result":"duplicate"' in data:
            self.counts["settled"] += 1
        elif b'"code":"unavailable"' in data:
            self.counts["unavailable"] += 1
        else:
            self.counts["other"] += 1
        self.answered.set()

    def expire(self, timeout: float) -> None:
        cutoff = time.monotonic() - timeout
        for reply, sent in list(self.pending.items()):
            if sent < cutoff:
                del self.pending[reply]
                self.counts["timed_out"] += 1


async def closed_loop(nc: Any, bodies: Iterator[bytes], seconds: float, concurrency: int) -> float:
    done = 0
    end = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < end:
            reply = await nc.request("ledger.rpc.settlement", next(bodies), timeout=10)
            if b'"result":"settled"' in reply.data:
                done += 1
    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.monotonic() - started)


async def open_loop(nc: Any, replies: Replies, bodies: Iterator[bytes], rate: float, seconds: float,
                     timeout: float) -> int:
    sent, started = 0, time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        for _ in range(int(elapsed * rate) - sent):
            reply = f"{replies.inbox}.{sent}"
            replies.pending[reply] = time.monotonic()
            await nc.publish("ledger.rpc.settlement", next(bodies), reply=reply)
            sent += 1
        replies.expire(timeout)
        await asyncio.sleep(0.005)
    deadline = time.monotonic() + timeout
    while replies.pending and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    replies.expire(0)
    return sent
