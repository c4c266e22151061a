"""The projector: stream LEDGER → read models, rows and checkpoint in ONE transaction per batch.

Per batch and per owned projection, inside one transaction: lock the
projection's checkpoint row, check it is still what this replica last wrote
(else another owner or a rebuild swap moved it: drop state, re-read, resume
from there), fold the messages after it, write the rows, advance the
checkpoint. A crash anywhere rolls the whole batch back, so restarting from
the stored checkpoint neither loses nor doubles an event.

Nothing is folded from a stream that is not the one the checkpoints count in
(ADR 0010): before reading, and every `takeover_every` seconds, the stream's
info is checked against what PostgreSQL remembers (`services.integrity.baseline.gate`),
and each batch's transaction checks the stream's creation time against the
baseline (writing it with the first checkpoint). A message the ledger did not
seal is not folded: the audit trail records it as forged, and the alarm goes.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import nats.errors
import structlog

from events.chain import Unsealed, seal_key_id
from projections.catalog import Projection, select
from projections.decode import decode_message, person_key_of
from projections.heads import Heads
from projections.model import Message
from projections.ownership import Ownership
from projections.source import Raw, ReadFailed, StreamGap, StreamReader
from projections.sql import write
from services.integrity.baseline import StreamLoss, check_baseline, gate, remembered
from services.integrity.findings import Finding
from services.integrity.observe import see_stream
from events.subjects import STREAM

log = logging.getLogger("ledger.projector")
alarm = structlog.get_logger(component="ledger.projector")
LIVE = "public"


def check_cancelled() -> None:
    """Raise if this task was cancelled: Python 3.11's `asyncio.wait_for`, used inside nats-py and
    asyncpg, can swallow a cancellation and return normally; a loop that never ends must not rely
    on seeing CancelledError from an await."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Fenced(Exception):
    """The checkpoint moved under us: someone else wrote this projection."""


def decode_batch(raws: list[Raw], seal_key: bytes,
                 decode: Callable[[int, str, bytes, bytes], Message] = decode_message) -> list[Message]:
    """Each message decoded; one the ledger did not seal (or cannot be read) comes back marked forged, with
    no events: the audit trail records it, nothing is folded from it, and it is an alarm, not a skip.
    `decode` is `decode_message` or a rebuild's `LeanDecoder.message` (the same seal check)."""
    out = []
    for raw in raws:
        try:
            out.append(decode(raw.seq, raw.subject, raw.data, seal_key))
            continue
        except Unsealed as bad:
            why = str(bad)
        except Exception as exc:     # sealed, yet its events do not decode: not ours either
            why = f"not a ledger commit: {exc!r}"[:500]
        key = person_key_of(raw.subject)
        alarm.critical("stream_loss_detected", finding="forged_message", seq=raw.seq, person_key=key,
                       subject=None if key else raw.subject, detail=why, seen_by="projector")
        out.append(Message(raw.seq, raw.subject, key, [], [], forged=why, size=len(raw.data)))
    return out


async def fold_into(conn: asyncpg.Connection, projection: Projection, schema: str, state: Any,
                    msgs: list[Message]) -> None:
    keys = projection.missing(state, msgs) if projection.missing is not None else None
    if keys and projection.load is not None:
        await projection.load(conn, schema, state, keys)
    ops = []
    for msg in msgs:
        ops.extend(projection.fold(state, msg))
    await write(conn, schema, ops)


async def ensure_checkpoints(conn: asyncpg.Connection, names: list[str]) -> dict[str, tuple[int, int]]:
    await conn.executemany("INSERT INTO projection_checkpoint (projection) VALUES ($1) ON CONFLICT DO NOTHING",
                           [(n,) for n in names])
    rows = await conn.fetch("SELECT projection, seq, generation FROM projection_checkpoint "
                            "WHERE projection = ANY($1::text[])", names)
    return {r["projection"]: (r["seq"], r["generation"]) for r in rows}


class Projector:
    def __init__(self, dsn: str, pool: asyncpg.Pool, js: Any, names: list[str] | None = None, *, seal_key: bytes,
                 stream: str = STREAM, max_batch: int = 2000, takeover_every: float = 1.0,  # seconds
                 owner: str | None = None, on_batch: Callable[[int], None] | None = None):
        self.dsn, self.pool, self.js, self.stream, self.seal_key = dsn, pool, js, stream, seal_key
        self.key_id = seal_key_id(seal_key)
        self.projections = {p.name: p for p in select(names)}
        self.max_batch, self.takeover_every = max_batch, takeover_every
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.on_batch = on_batch
        self.expected: dict[str, tuple[int, int]] = {}
        self.states: dict[str, Any] = {}
        self.ownership: Ownership | None = None
        self.created: Any = None          # creation time of the stream being read (a datetime)
        self.heads = Heads()
        self.held: StreamLoss | None = None

    @property
    def owned(self) -> list[str]:
        return list(self.ownership.owned) if self.ownership else []

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Project until `stop` is set; retries after errors (a dead database, a bad batch) with backoff."""
        stop = stop or asyncio.Event()
        backoff = 0.5
        while not stop.is_set():
            check_cancelled()
            try:
                await self._run_owned(stop)
                backoff = 0.5
            except StreamLoss as loss:
                if self.held is None or str(self.held) != str(loss):
                    log.error("projector %s: not folding: %s", self.owner, loss)
                self.held = loss
                await _sleep(stop, min(backoff, 2.0))
            # NATS errors too: "JetStream system temporarily unavailable" (503) while an R3 cluster elects
            # a leader ended `ledger project` for good (make chaos, R3 stream leader paused).
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, LookupError, StreamGap,
                    ReadFailed, nats.errors.Error) as exc:
                log.error("projector %s: %s; retrying in %.1fs", self.owner, exc, backoff)
                await _sleep(stop, backoff)
                backoff = min(backoff * 2, 10.0)

    async def _run_owned(self, stop: asyncio.Event) -> None:
        lock_conn = await asyncpg.connect(self.dsn)
        self.ownership = Ownership(lock_conn, list(self.projections))
        try:
            while not stop.is_set():
                check_cancelled()
                if not await self.ownership.try_acquire():
                    if not self.ownership.owned:
                        await _sleep(stop, self.takeover_every)
                        continue
                await self._consume(stop)
                if not self.ownership.alive():
                    return
        finally:
            await self.ownership.release()
            await lock_conn.close()

    async def _consume(self, stop: asyncio.Event) -> None:
        """Read from the lowest owned checkpoint until stopped, fenced, or a new projection is taken."""
        owned = self.ownership.owned
        async with self.pool.acquire() as conn:
            self.expected = await ensure_checkpoints(conn, owned)
        self.created = None
        await self._gate()
        self.states = {n: self.projections[n].new_state() for n in owned}
        start = min(seq for seq, _ in self.expected.values()) + 1
        self.heads = Heads(from_start=start == 1)
        next_takeover = time.monotonic() + self.takeover_every
        async with StreamReader(self.js, start, stream=self.stream, max_batch=self.max_batch) as reader:
            while not stop.is_set() and self.ownership.alive():
                check_cancelled()
                raws = await reader.batch(timeout=0.25)
                if raws:
                    try:
                        await self.apply(decode_batch(raws, self.seal_key))
                    except Fenced as fenced:
                        log.warning("projector %s: checkpoint of %s moved; resuming from the stored one",
                                    self.owner, fenced)
                        return
                    except BaseException:
                        self.states = {n: self.projections[n].new_state() for n in owned}
                        self.heads = Heads(from_start=start == 1)
                        raise
                if time.monotonic() >= next_takeover:
                    next_takeover = time.monotonic() + self.takeover_every
                    await self._gate()
                    if await self.ownership.try_acquire():
                        return          # a projection was taken over: restart from its checkpoint

    async def _gate(self) -> None:
        """Raise `StreamLoss` unless the stream is the one the checkpoints count in; note its creation time."""
        try:
            async with self.pool.acquire() as conn:
                baseline, checkpoints = await remembered(conn, self.js, self.seal_key, self.stream)
        except Unsealed as bad:
            raise StreamLoss([Finding("integrity_state_unsealed", str(bad))]) from None
        _, seen = await see_stream(self.js, self.stream)
        gate(baseline, checkpoints, seen, self.key_id)
        if self.created is not None and seen.created != self.created:
            raise StreamLoss([Finding("stream_recreated", "the stream was recreated while being read")])
        self.created = seen.created
        self.held = None

    async def apply(self, msgs: list[Message]) -> None:
        """One transaction: for each owned projection, fence, fold, write, advance the checkpoint."""
        last = msgs[-1].seq
        done: dict[str, tuple[int, int]] = {}
        async with self.pool.acquire() as conn, conn.transaction():
            await check_baseline(conn, self.created, last, self.key_id, self.stream)   # with the first checkpoint
            msgs = await self.heads.screen(conn, msgs)           # a sealed commit published again: not folded
            for name in sorted(self.ownership.owned):     # one lock order for everyone (see rebuild.swap)
                row = await conn.fetchrow("SELECT seq, generation FROM projection_checkpoint "
                                          "WHERE projection = $1 FOR UPDATE", name)
                if (row["seq"], row["generation"]) != self.expected.get(name):
                    raise Fenced(name)
                todo = [m for m in msgs if m.seq > row["seq"]]
                if todo:
                    await fold_into(conn, self.projections[name], LIVE, self.states[name], todo)
                    await conn.execute("UPDATE projection_checkpoint SET seq = $2, owner = $3, updated_at = now() "
                                       "WHERE projection = $1", name, last, self.owner)
                    done[name] = (last, row["generation"])
        self.expected.update(done)
        if self.on_batch is not None:
            self.on_batch(last)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:      # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        pass
