"""Each person's chain head as the projector has folded it, so a sealed commit published again is not folded.

A replayed commit carries the ledger's own seal, so `decode_batch` takes it; but it names a
predecessor that is no longer the person's head. Folding it would count it twice (or stop the
projector on a duplicate key), so it is marked forged here, before any projection sees it
(ADR 0010). Heads are kept for the most recent persons only; a person not in memory is read from
`ledger_event` up to the batch, when the audit trail has reached the batch (else not checked: a
replica that does not own the audit trail may be behind or ahead of it). A rebuild that folds
after its bulk load reads the heads from its own audit trail (`trail`: the build's schema, which
holds every commit before the batch being screened but the one batch in flight, whose persons are
in memory).
"""
from __future__ import annotations

import itertools
from typing import Any

import structlog

from events.chain import GENESIS
from projections.model import Message

alarm = structlog.get_logger(component="ledger.projector")
LIMIT = 200_000          # persons whose head is kept in memory (~250 bytes each); past it the older half goes


class Heads:
    def __init__(self, from_start: bool = False, limit: int = LIMIT, trail: str | None = None):
        self.limit, self.trail = limit, trail
        self.heads: dict[str, str] = {}
        self.whole = from_start     # read from sequence 1 and nothing forgotten: a person not here is new

    async def screen(self, conn: Any, msgs: list[Message]) -> list[Message]:
        """`msgs` with each person commit that does not continue its person's chain marked forged."""
        await self._load(conn, msgs)
        out = []
        for msg in msgs:
            key = msg.person_key
            if key is None or msg.forged is not None or not msg.events:
                out.append(msg)
                continue
            known = self.heads.get(key)
            if known is not None and msg.events[0].prev_hash != known:
                why = "does not continue the person's chain"
                alarm.critical("stream_loss_detected", finding="forged_message", seq=msg.seq, person_key=key,
                               detail=why, seen_by="projector")
                out.append(Message(msg.seq, msg.subject, key, [], [], forged=why, size=msg.size))
                continue
            self.heads.pop(key, None)                 # re-inserted last: the dict's order is recency
            self.heads[key] = msg.events[-1].hash
            out.append(msg)
        if len(self.heads) > self.limit:
            self.whole = False
            for key in list(itertools.islice(self.heads, self.limit // 2)):
                del self.heads[key]
        return out

    async def _load(self, conn: Any, msgs: list[Message]) -> None:
        wanted = list({m.person_key for m in msgs if m.person_key and m.events} - self.heads.keys())
        if not wanted:
            return
        if self.whole:
            self.heads.update(dict.fromkeys(wanted, GENESIS))
            return
        first = msgs[0].seq
        if self.trail is None:
            trail = await conn.fetchval("SELECT seq FROM projection_checkpoint WHERE projection = 'audit_trail'")
            if trail is None or trail < first - 1:
                return                                # the audit trail has not reached us: not checked
        rows = await conn.fetch(
            f'SELECT DISTINCT ON (person_key) person_key, hash FROM "{self.trail or "public"}".ledger_event '
            "WHERE person_key = ANY($1::text[]) AND seq < $2 ORDER BY person_key, seq DESC, idx DESC", wanted, first)
        found = {r["person_key"]: r["hash"] for r in rows}
        for key in wanted:
            self.heads[key] = found.get(key, GENESIS)
