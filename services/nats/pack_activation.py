"""A pack change is an event (design.md §3): the packs a process decides with are on the stream.

At start each adjudicator compares its packs (id, version, digest of the file)
with the `pack_activated` events on `ledger.ref.pack` and records the ones
that are new. Audit replay reads these to know which version was in force; a
file edited without a new version shows up as a second digest for the same
version, which supervisors can see.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from nats.js.errors import APIError

from events import ledger as ev
from events.chain import encode_sealed, seal_stored
from events.subjects import PACK_SUBJECT as SUBJECT
from events.upcast import decode_commit
from services.nats.fast import EXPECTED_LAST_SUBJECT_SEQ
from services.nats.reads import read_subject
from services.nats.streams import WRONG_LAST_SEQUENCE
from services.policy.pack import Pack, PackSet


async def activated(js: Any) -> tuple[set[tuple[str, str, str]], int]:
    """(pack id, version, digest) already on the stream, and the subject's last sequence."""
    seen, last = set(), 0
    for msg in await read_subject(js, SUBJECT):
        last = msg.seq
        for event in decode_commit(msg.data).events:
            if isinstance(event, ev.PackActivated):
                seen.add((event.pack_id, event.version, event.digest))
    return seen, last


def activation(pack: Pack, now: dt.datetime) -> ev.PackActivated:
    return ev.PackActivated(event_id=f"pack:{pack.id}:{pack.version}:{pack.digest}", correlation_id="startup",
                            causation_id="startup", pack=pack.id, pack_version=pack.version, recorded_at=now,
                            pack_id=pack.id, version=pack.version, digest=pack.digest,
                            effective_from=pack.effective_from)


async def activate_packs(js: Any, packs: PackSet, now: dt.datetime, *, seal_key: bytes,
                         attempts: int = 5) -> list[Pack]:
    """Record the packs not yet on the stream, sealed like every commit; safe when several processes start at once."""
    for _ in range(attempts):
        seen, last = await activated(js)
        new = [p for p in packs.packs if (p.id, p.version, p.digest) not in seen]
        if not new:
            return []
        events, stored, _ = seal_stored([activation(p, now) for p in new], "")
        commit = ev.Commit(f"pack-activation-{last + 1}", "startup", events)
        try:
            await js.publish(SUBJECT, encode_sealed(seal_key, SUBJECT, commit, stored),
                             headers={EXPECTED_LAST_SUBJECT_SEQ: str(last)})
            return new
        except APIError as exc:
            if exc.err_code != WRONG_LAST_SEQUENCE:
                raise
    raise RuntimeError("could not record pack activation: the subject kept changing")
