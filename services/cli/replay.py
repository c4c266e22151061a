"""`ledger replay FILE.jsonl`: the decision path with an in-memory store and no server (integration.md §3).

Every non-empty line gets its result, whatever it holds (integration.md §4). A
line longer than a message may be is read in bounded memory and dead-lettered
from its first bytes with its size and SHA-256 (`events.limits.Body`); a line
that crashes the decision path is dead-lettered `poison_message`, as the feed
does after its last try, instead of ending the replay.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from events import codes
from events.limits import MAX_MESSAGE_BYTES, Body
from events.results import Outbound, encode_result
from services.adjudicator.handler import Handler
from services.adjudicator.service import redact
from services.compose.core import build_handler, counted_ids
from services.memory.store import MemoryStore
from services.policy.pack import DEFAULT_PACK_DIR, PackSet

REPLAY_CLOCK = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)   # replay output never depends on the clock
FREEZE_EVERY = 5_000     # commits; see MemoryStore: keeps the GC from rescanning the stored history
READ_CHUNK = MAX_MESSAGE_BYTES + 1


def replay_handler(packs: PackSet, freeze_every: int = 0) -> Handler:
    """The decision path over a memory store; `ledger replay` passes `freeze_every=FREEZE_EVERY`."""
    return build_handler(packs, MemoryStore(freeze_every), clock=lambda: REPLAY_CLOCK, new_id=counted_ids("replay"))


async def replay_lines(lines: Iterable[bytes | Body], handler: Handler) -> list[list[Outbound]]:
    return [await answer(line, handler) for line in lines]


async def answer(line: bytes | Body, handler: Handler) -> list[Outbound]:
    """The results of one line; never raises for what the line holds."""
    if isinstance(line, Body):
        return await handler.dead_letter(bytes(line.head), "replay", codes.INVALID_MESSAGE, line.refusal())
    try:
        return await handler.handle(line, source="replay")
    except Exception as exc:
        why = redact(f"crashed the adjudicator: {exc!r}", line)
        print(f"ledger replay: a line {why}", file=sys.stderr)
        return await handler.dead_letter(line, "replay", codes.POISON_MESSAGE, why)


def message_lines(stream: BinaryIO) -> Iterator[bytes | Body]:
    """Each non-empty line without its surrounding whitespace; a `Body` for a line too long to be a message."""
    while part := stream.readline(READ_CHUNK):
        if part.endswith(b"\n") or len(part) < READ_CHUNK:
            line = part.strip()
            if line:
                yield line
            continue
        body = _long_line(stream, part)
        whole = body.whole
        if whole:
            yield whole
        elif whole is None:
            yield body


def _long_line(stream: BinaryIO, part: bytes) -> Body:
    """The rest of a line longer than READ_CHUNK, stripped like a short one, holding at most two message sizes."""
    body, tail = Body(), None       # tail: the body and the whitespace after it, in case more text follows
    while part:
        done = part.endswith(b"\n") or len(part) < READ_CHUNK
        if not body.size:
            part = part.lstrip()
        text = part.rstrip()
        if text:
            body = tail if tail is not None else body
            body.add(text)
            tail = None
        if len(text) < len(part) and body.size:
            tail = tail if tail is not None else body.copy()
            tail.add(part[len(text):])
        if done:
            break
        part = stream.readline(READ_CHUNK)
    return body


def run(path: str, pack_dir: str | None, out: BinaryIO) -> int:
    try:
        packs = PackSet.from_dir(Path(pack_dir) if pack_dir else DEFAULT_PACK_DIR)
    except (OSError, ValueError) as exc:
        print(f"ledger replay: cannot load policy packs: {exc}", file=sys.stderr)
        return 2
    try:
        source = sys.stdin.buffer if path == "-" else open(path, "rb")
    except OSError as exc:
        print(f"ledger replay: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    handler = replay_handler(packs, FREEZE_EVERY)

    async def main() -> None:
        with source:
            for line in message_lines(source):
                for result in await answer(line, handler):
                    out.write(encode_result(result) + b"\n")

    try:
        asyncio.run(main())
    except BrokenPipeError:
        return 0                     # the reader (head, less) has what it wanted
    except OSError as exc:
        print(f"ledger replay: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    out.flush()
    return 0
