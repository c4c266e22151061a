"""`ledger replay FILE.jsonl`: the decision path with an in-memory store and no server (integration.md §3)."""
from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from events.results import Outbound, encode_result
from services.adjudicator.handler import Handler
from services.adjudicator.memory_store import MemoryStore
from services.policy.engine import Engine
from services.policy.pack import DEFAULT_PACK_DIR, PackSet

REPLAY_CLOCK = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)   # replay output never depends on the clock
FREEZE_EVERY = 5_000     # commits; see MemoryStore: keeps the GC from rescanning the stored history


def replay_handler(packs: PackSet, freeze_every: int = 0) -> Handler:
    """The decision path over a memory store; `ledger replay` passes `freeze_every=FREEZE_EVERY`."""
    counter = itertools.count(1)
    return Handler(Engine(packs), MemoryStore(freeze_every), clock=lambda: REPLAY_CLOCK,
                   new_id=lambda: f"replay-{next(counter)}")


async def replay_lines(lines: Iterable[bytes], handler: Handler) -> list[list[Outbound]]:
    return [await handler.handle(line, source="replay") for line in lines]


def message_lines(stream: BinaryIO) -> Iterator[bytes]:
    for line in stream:
        line = line.strip()
        if line:
            yield line


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
                for result in await handler.handle(line, source="replay"):
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
