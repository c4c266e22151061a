"""How much a pull consumer still owes us: the credit both our pull loops (the feed, the projector's reader) keep."""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import msgspec

_ENCODE = msgspec.json.Encoder()


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
