"""The bulk of a rebuild: one worker's share of the stream, folded lean and COPied into the fresh tables.

Every message is one share's: a person's commits go to the share their
`person_key` hashes to (claims are folded per person, and whether a commit
continues its person's chain — ADR 0010 — is known only where all of that
person's commits are read), every other message (reference data, key claims,
dead letters) to the share whose sequence range holds it. The audit trail and
dead letters take their rows from the messages their share holds. Each worker
reads the stream up to the rebuild's target and decodes only what is its own,
into the lean structs of `projections.decode`, through the same seal check and
the same chain screen (`Heads`) as the live projector: a message the ledger did
not seal, or a sealed commit replayed, is recorded as forged and raises the
alarm, never folded. PostgreSQL stores batch N while batch N+1 is folded. The
indexes come after (rebuild.py).
"""
from __future__ import annotations

import asyncio
import gc
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from projections.catalog import load_settlements
from projections.claims import LINE, SETTLEMENT, WARNING
from projections.decode import PERSON_PREFIX, LeanDecoder, merge_needs
from projections.heads import Heads
from projections.lean_claims import NEEDS as CLAIMS_NEEDS
from projections.lean_claims import LeanClaims, flow_upserts
from projections.lean_rows import Rows
from projections.model import Message
from projections.runner import decode_batch
from projections.source import StreamReader
from projections.sql import copy_lines, needs_escaping, shapes, write_merged, write_staged
from projections.trail import (DEAD_LETTER, DEAD_LETTER_NEEDS, FORGED_MESSAGE, LEDGER_COMMIT, LEDGER_EVENT,
                               TRAIL_NEEDS, commit_line, dead_letter_lines, forged_line, trail_lines)
from events.subjects import STREAM

TEXT = {"format": "text"}
PERSON_AT = len(PERSON_PREFIX)
CHUNK = 25      # messages folded between two turns of the event loop: the writer's next statement goes out


@dataclass(frozen=True)
class Share:
    """Persons whose key hashes (crc32, the same in every process) to `part` of `parts`; sequences
    `first`..`last` of the other subjects."""
    part: int
    parts: int
    first: int
    last: int

    def owns_person(self, person_key: str) -> bool:
        return self.parts == 1 or zlib.crc32(person_key.encode()) % self.parts == self.part


def shares(parts: int, target: int) -> list[Share]:
    """Every share of `parts`: sequence ranges of (almost) equal length covering 1..target."""
    step = -(-target // parts)
    return [Share(i, parts, i * step + 1, min(target, (i + 1) * step)) for i in range(parts)]


@dataclass
class Loaded:
    seq: int = 0          # last sequence folded and stored
    events: int = 0       # events of the messages this share holds (each message is one share's)


class ShareFold:
    """Raw stream messages → one batch of COPY lines and merged upserts for this share."""

    def __init__(self, names: list[str], share: Share, target: int, seal_key: bytes):
        self.share, self.target, self.seal_key = share, target, seal_key
        self.claims_on, self.trail_on, self.dead_on = ("claims" in names, "audit_trail" in names,
                                                      "dead_letters" in names)
        self.others_on = self.trail_on or self.dead_on          # messages on subjects other than a person's
        needs = [n for on, n in ((self.claims_on, CLAIMS_NEEDS), (self.trail_on, TRAIL_NEEDS),
                                 (self.dead_on, DEAD_LETTER_NEEDS)) if on]
        self.decoder = LeanDecoder(merge_needs(*needs))
        self.heads = Heads(from_start=True)
        self.claims = LeanClaims([self.decoder]) if self.claims_on else None

    def decode(self, raws: list) -> tuple[list[Message], list[bool]]:
        """This share's messages of `raws` (up to the target), decoded and seal-checked (`decode_batch`:
        one the ledger did not seal comes back forged, with the alarm), and whether each needs escaping."""
        mine, share, others_on = [], self.share, self.others_on
        for raw in raws:
            seq, subject = raw.seq, raw.subject
            if seq > self.target:
                break
            if subject.startswith(PERSON_PREFIX):
                if not share.owns_person(subject[PERSON_AT:]):
                    continue
            elif not (others_on and share.first <= seq <= share.last):
                continue
            mine.append(raw)
        msgs = decode_batch(mine, self.seal_key, self.decoder.message)
        return msgs, [needs_escaping(r.data) or needs_escaping(r.subject) for r in mine]

    def fold(self, msgs: list[Message], escapes: list[bool], into: tuple[Rows, list, list, list, list]) -> None:
        rows, trail, commits, forged, dead = into
        for msg, escape in zip(msgs, escapes):
            if self.trail_on:
                if msg.forged is not None:
                    forged.append(forged_line(msg))
                    continue
                trail.extend(trail_lines(msg.seq, msg.subject, msg.person_key, msg.events, msg.raw_events, escape))
                commits.append(commit_line(msg, escape))
            if self.dead_on:
                dead.extend(dead_letter_lines(msg.seq, msg.events))
            if self.claims is not None and msg.person_key is not None and msg.events:
                self.claims.fold(rows, msg.seq, msg.person_key, msg.events, escape)


async def load_share(pool: asyncpg.Pool, js: Any, names: list[str], share: Share, target: int,
                     schemas: dict[str, str], *, seal_key: bytes, stream: str = STREAM, max_batch: int = 5000,
                     progress: Callable[[Loaded], None] | None = None) -> Loaded:
    """Fold and store this share of sequences 1..`target` into the tables of `schemas` (projection → schema)."""
    fold = ShareFold(names, share, target, seal_key)
    done = Loaded()
    queue: asyncio.Queue = asyncio.Queue(maxsize=1)

    async def writer() -> None:
        while (item := await queue.get()) is not None:
            last, events, (rows, trail, commits, forged, dead) = item
            async with pool.acquire() as conn, conn.transaction():
                if fold.claims_on:
                    schema = schemas["claims"]
                    for table in (SETTLEMENT, LINE, WARNING):
                        await copy_lines(conn, schema, table, rows.copy[table])
                    await write_merged(conn, schema, rows.merged(), rows.escape)
                for table, lines in ((LEDGER_EVENT, trail), (LEDGER_COMMIT, commits), (FORGED_MESSAGE, forged)):
                    await copy_lines(conn, schemas.get("audit_trail", ""), table, lines, TEXT)
                if dead:
                    await copy_lines(conn, schemas["dead_letters"], DEAD_LETTER, dead)
            done.seq, done.events = last, done.events + events
            if progress is not None:
                progress(done)
            queue.task_done()

    task = asyncio.create_task(writer())

    async def hand(item: Any) -> None:
        """Queue `item` for the writer; raise the writer's error if it failed meanwhile."""
        put = asyncio.ensure_future(queue.put(item))
        finished, _ = await asyncio.wait({task, put}, return_when=asyncio.FIRST_COMPLETED)
        if task in finished:
            put.cancel()
            task.result()

    async def drained() -> None:
        finished, _ = await asyncio.wait({task, asyncio.ensure_future(queue.join())},
                                         return_when=asyncio.FIRST_COMPLETED)
        if task in finished:
            task.result()

    read = 0           # a person's commits may be anywhere: every share reads 1..target
    try:
        if target > 0:
            async with StreamReader(js, 1, stream=stream, max_batch=max_batch) as reader:
                while read < target:
                    raws = await reader.batch(timeout=5.0)
                    if not raws:
                        continue
                    msgs, escapes = [], []
                    for at in range(0, len(raws), CHUNK):    # let the writer and the reader run between
                        more, escaped = fold.decode(raws[at:at + CHUNK])
                        msgs += more
                        escapes += escaped
                        await asyncio.sleep(0)
                    read = min(raws[-1].seq, target)
                    msgs = await fold.heads.screen(pool, msgs)      # replayed commits: forged, not folded
                    events = sum(len(m.events) for m in msgs)
                    if fold.claims is not None:
                        keys = fold.claims.missing([(m.person_key, m.events) for m in msgs if m.person_key])
                        if keys:                 # a settlement dropped from the bounded index: from SQL,
                            await drained()      # once everything before is stored
                            async with pool.acquire() as conn:
                                await load_settlements(conn, schemas["claims"], fold.claims.state, keys)
                    out = Rows(), [], [], [], []
                    for at in range(0, len(msgs), CHUNK):
                        fold.fold(msgs[at:at + CHUNK], escapes[at:at + CHUNK], out)
                        await asyncio.sleep(0)
                    gc.collect(1)                # see rebuild.py: the surviving index is frozen, not rescanned
                    gc.freeze()
                    await hand((read, events, out))
        if fold.claims is not None:              # fund flows: a few hundred rows, written once
            await drained()
            async with pool.acquire() as conn, conn.transaction():
                await write_staged(conn, schemas["claims"], shapes(flow_upserts(fold.claims.flows)), escape=True)
        await hand(None)
        await task
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return done
