"""What JetStream holds now, read cheaply: the stream's info and one person's last commit (direct gets)."""
from __future__ import annotations

import asyncio
from typing import Any

from nats.js.errors import NotFoundError

from events.chain import Unsealed, head_of, read_sealed
from services.integrity.findings import StreamSeen, SubjectSeen
from events.subjects import STREAM


def stream_seen(info: Any) -> StreamSeen:
    if info is None:
        return StreamSeen(exists=False)
    state = info.state
    return StreamSeen(True, info.created, int(state.first_seq or 0), int(state.last_seq or 0),
                      int(state.num_deleted or 0))


async def see_stream(js: Any, stream: str = STREAM) -> tuple[Any, StreamSeen]:
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        info = None
    return info, stream_seen(info)


def _head(seal_key: bytes, subject: str, data: bytes) -> tuple[str | None, str | None]:
    """(head, None) for a sealed commit, (None, why) for anything else."""
    try:
        view = read_sealed(seal_key, subject, data)
    except Unsealed as bad:
        return None, str(bad)
    return (head_of(bytes(view.events[-1])) if view.events else ""), None


async def see_subject(js: Any, seal_key: bytes, subject: str, projected_seq: int,
                      stream: str = STREAM, direct: bool = True) -> SubjectSeen:
    """The subject's last message, and — when it is later than `projected_seq` — the one at that sequence.

    ``direct``: a direct get, which any replica of an R3 stream answers, a follower still catching up
    included (``allow_direct``); ``False`` asks the stream leader (`$JS.API.STREAM.MSG.GET`)."""
    try:
        last = await js.get_last_msg(stream, subject, direct=direct)
    except NotFoundError:
        return SubjectSeen()
    head, unsealed = _head(seal_key, subject, last.data or b"")
    seen = SubjectSeen(int(last.seq), head, unsealed)
    if seen.last_seq <= projected_seq or unsealed is not None:
        return seen
    try:
        at = await js.get_msg(stream, seq=projected_seq, direct=direct)
    except NotFoundError:
        return seen
    if at.subject != subject:
        return seen
    return SubjectSeen(seen.last_seq, head, None, _head(seal_key, subject, at.data or b"")[0])


async def holds_at(js: Any, subject: str, seq: int, stream: str = STREAM) -> bool:
    """Whether the stream still has a message on `subject` at `seq`."""
    try:
        found = await js.get_msg(stream, seq=seq, direct=True)
    except NotFoundError:
        return False
    return found.subject == subject


async def see_subjects(js: Any, seal_key: bytes, heads: list[tuple[str, str, int, str]], *,
                       stream: str = STREAM, concurrency: int = 32) -> list[SubjectSeen]:
    """`see_subject` for each projected head (person_key, subject, seq, hash), a bounded number at a time."""
    slots = asyncio.Semaphore(concurrency)

    async def one(subject: str, seq: int) -> SubjectSeen:
        async with slots:
            return await see_subject(js, seal_key, subject, seq, stream)

    return list(await asyncio.gather(*(one(subject, seq) for _, subject, seq, _ in heads)))
