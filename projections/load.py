"""The bulk of a rebuild: one worker's share of the stream, folded lean and COPied into the fresh tables.

A share is the persons whose `person_key` hashes to it (claims: every fold is
per person) and a range of sequences (audit trail, dead letters: one row per
event). Each worker reads the stream up to the rebuild's target and decodes
only what is its own, into the lean structs of `projections.decode`; PostgreSQL
stores batch N while batch N+1 is folded. The indexes come after (rebuild.py).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from projections.catalog import load_settlements
from projections.claims import LINE, SETTLEMENT, WARNING
from projections.decode import PERSON_PREFIX, LeanDecoder, merge_needs, raw_events
from projections.lean_claims import NEEDS as CLAIMS_NEEDS
from projections.lean_claims import LeanClaims, flow_upserts
from projections.lean_rows import Rows
from projections.source import StreamReader
from projections.sql import copy_lines, needs_escaping, shapes, write_merged, write_staged
from projections.trail import (DEAD_LETTER, DEAD_LETTER_NEEDS, LEDGER_EVENT, TRAIL_NEEDS, dead_letter_lines,
                               trail_lines)
from services.runtime.stream import STREAM

log = logging.getLogger("ledger.rebuild")
TEXT = {"format": "text"}
PERSON_AT = len(PERSON_PREFIX)
CHUNK = 25      # messages folded between two turns of the event loop: the writer's next statement goes out


@dataclass(frozen=True)
class Share:
    """Persons whose key hashes (crc32, the same in every process) to `part` of `parts`; sequences
    `first`..`last` of the audit trail and dead letters."""
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
    events: int = 0       # events of the messages this share counts (each message counted by one share)


class ShareFold:
    """Raw stream messages → one batch of COPY lines and merged upserts for this share."""

    def __init__(self, names: list[str], share: Share, target: int):
        self.share, self.target = share, target
        self.claims_on, self.trail_on, self.dead_on = ("claims" in names, "audit_trail" in names,
                                                      "dead_letters" in names)
        self.ranged_on = self.trail_on or self.dead_on
        ranged_needs = [n for on, n in ((self.trail_on, TRAIL_NEEDS), (self.dead_on, DEAD_LETTER_NEEDS)) if on]
        self.by_range = LeanDecoder(merge_needs(*ranged_needs))              # in our range, someone else's person
        self.by_person = LeanDecoder(CLAIMS_NEEDS)                           # our person, out of our range
        self.by_both = LeanDecoder(merge_needs(CLAIMS_NEEDS, *ranged_needs))
        self.claims = LeanClaims([self.by_person, self.by_both]) if self.claims_on else None

    def decode(self, raws: list) -> tuple[list[tuple], int]:
        """What this share folds of `raws` (up to the target), and how many events it counts (each
        message is counted by one share: its range's, or its person's in a claims-only rebuild)."""
        out, counted = [], 0
        share, claims_on, ranged_on, sliced = self.share, self.claims_on, self.ranged_on, self.trail_on
        for seq, subject, data in raws:
            if seq > self.target:
                break
            pk = subject[PERSON_AT:] if subject.startswith(PERSON_PREFIX) else None
            mine = claims_on and pk is not None and share.owns_person(pk)
            ranged = ranged_on and share.first <= seq <= share.last
            if not (mine or ranged):
                continue
            decoder = self.by_both if mine and ranged else self.by_person if mine else self.by_range
            try:
                slices = raw_events(data) if ranged and sliced else None
                events = decoder.events(data) if slices is None else decoder.each(slices)
            except Exception as exc:        # as the live projector: not a commit, skipped, said so
                log.error("stream message %d on %s is not a ledger commit (%s); skipped", seq, subject, exc)
                continue
            if ranged or not ranged_on:
                counted += len(events)
            escape = needs_escaping(data) or needs_escaping(subject)
            out.append((seq, subject, pk if mine else None, pk, ranged, events, slices, escape))
        return out, counted

    def fold(self, decoded: list[tuple], into: tuple[Rows, list[bytes], list[bytes]]) -> None:
        rows, trail, dead = into
        for seq, subject, pk, subject_key, ranged, events, slices, escape in decoded:
            if ranged and self.trail_on:
                trail.extend(trail_lines(seq, subject, subject_key, events, slices, escape))
            if ranged and self.dead_on:
                dead.extend(dead_letter_lines(seq, events))
            if pk is not None and events:
                self.claims.fold(rows, seq, pk, events, escape)


async def load_share(pool: asyncpg.Pool, js: Any, names: list[str], share: Share, target: int,
                     schemas: dict[str, str], *, stream: str = STREAM, max_batch: int = 5000,
                     progress: Callable[[Loaded], None] | None = None) -> Loaded:
    """Fold and store this share of sequences 1..`target` into the tables of `schemas` (projection → schema)."""
    fold = ShareFold(names, share, target)
    done = Loaded()
    queue: asyncio.Queue = asyncio.Queue(maxsize=1)

    async def writer() -> None:
        while (item := await queue.get()) is not None:
            last, events, (rows, trail, dead) = item
            async with pool.acquire() as conn, conn.transaction():
                if fold.claims_on:
                    schema = schemas["claims"]
                    for table in (SETTLEMENT, LINE, WARNING):
                        await copy_lines(conn, schema, table, rows.copy[table])
                    await write_merged(conn, schema, rows.merged(), rows.escape)
                if trail:
                    await copy_lines(conn, schemas["audit_trail"], LEDGER_EVENT, trail, TEXT)
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

    end = target if fold.claims_on else share.last
    start = 1 if fold.claims_on else share.first
    read = start - 1
    try:
        if start <= end:
            async with StreamReader(js, start, stream=stream, max_batch=max_batch) as reader:
                while read < end:
                    raws = await reader.batch(timeout=5.0)
                    if not raws:
                        continue
                    decoded, events = [], 0
                    for at in range(0, len(raws), CHUNK):    # let the writer and the reader run between
                        more, counted = fold.decode(raws[at:at + CHUNK])
                        decoded += more
                        events += counted
                        await asyncio.sleep(0)
                    read = min(raws[-1].seq, end)
                    if fold.claims is not None:
                        keys = fold.claims.missing([(d[2], d[5]) for d in decoded if d[2] is not None])
                        if keys:                 # a settlement dropped from the bounded index: from SQL,
                            await drained()      # once everything before is stored
                            async with pool.acquire() as conn:
                                await load_settlements(conn, schemas["claims"], fold.claims.state, keys)
                    out = Rows(), [], []
                    for at in range(0, len(decoded), CHUNK):
                        fold.fold(decoded[at:at + CHUNK], out)
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
