"""Reading stream LEDGER by subject: one person's commits, a subject's last sequence, every person subject.

Direct gets may be answered by any replica of an R3 stream, so a read can be
a little behind the leader. That is safe here: a writer that decides on a
stale read publishes with a stale expected sequence and gets 10071.
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from events.subjects import PERSON_SUBJECT, STREAM

__all__ = ["StoredMsg", "last_subject_sequence", "person_subjects", "read_subject"]


async def last_subject_sequence(js: Any, subject: str, *, stream: str = STREAM, direct: bool = True) -> int:
    """Stream sequence of the last message on ``subject``, 0 if it has none. A direct get by default,
    which any replica answers (a follower behind the leader too); ``direct=False`` asks the leader."""
    try:
        msg = await js.get_last_msg(stream, subject, direct=direct)
    except NotFoundError:
        return 0
    return int(msg.seq or 0)


class StoredMsg(NamedTuple):
    """One stored message: stream sequence, payload, and the headers it was published with."""

    seq: int
    data: bytes
    headers: dict[str, str]


# Headers the server adds to direct-get replies; not part of what was published.
_DIRECT_HEADERS = frozenset(
    {"Nats-Stream", "Nats-Subject", "Nats-Sequence", "Nats-Time-Stamp", "Nats-Num-Pending", "Nats-Last-Sequence"}
)


async def read_subject(
    js: Any,
    subject: str,
    *,
    stream: str = STREAM,
    after_seq: int = 0,
    batch: int = 1000,
    timeout: float = 5.0,
) -> list[StoredMsg]:
    """All messages on ``subject`` with sequence > ``after_seq``, in order.

    Why batched direct get rather than an ordered consumer: it is one request
    per ``batch`` messages with no consumer to create and clean up, and its
    end is explicit (an "EOB" status with the count still pending, or 404 for
    an empty subject), so an empty or fully-read subject returns at once
    instead of waiting for a fetch timeout. Needs ``allow_direct`` (LEDGER has
    it) and nats-server 2.11+. ``timeout`` bounds the wait for each reply.
    """
    nc = js._nc  # nats-py has no public accessor; multi-reply requests need the raw connection
    req_subject = f"{js._prefix}.DIRECT.GET.{stream}"
    out: list[StoredMsg] = []
    next_seq = after_seq + 1
    sub = await nc.subscribe(nc.new_inbox())
    try:
        while True:  # one request per batch; each ends with EOB (204) or 404
            request = {"seq": next_seq, "next_by_subj": subject, "batch": batch}
            await nc.publish(req_subject, json.dumps(request).encode(), reply=sub.subject)
            while True:
                msg = await sub.next_msg(timeout=timeout)
                headers = msg.headers or {}
                status = headers.get("Status")
                if status is None:
                    seq = int(headers["Nats-Sequence"])
                    user = {k: v for k, v in headers.items() if k not in _DIRECT_HEADERS}
                    out.append(StoredMsg(seq, msg.data, user))
                    next_seq = seq + 1
                elif status == "204":  # end of batch: more to read only if some are pending
                    if int(headers.get("Nats-Num-Pending", "0")) == 0:
                        return out
                    break
                elif status == "404":  # nothing (more) on the subject
                    return out
                elif status == "503":  # no stream answering direct gets
                    raise ServiceUnavailableError(description=f"no responders for {req_subject}")
                else:
                    raise APIError(code=int(status), description=str(headers.get("Description")))
    finally:
        await sub.unsubscribe()


async def person_subjects(js: Any, *, stream: str = STREAM, timeout: float = 30.0) -> AsyncIterator[str]:
    """Every ``ledger.person.*`` subject of the stream (stream info with ``subjects_filter``, paged by
    the server at 100,000 subjects; nats-py's stream_info does not page them)."""
    nc = js._nc
    api = f"{js._prefix}.STREAM.INFO.{stream}"
    offset = 0
    while True:
        request = {"subjects_filter": PERSON_SUBJECT.format("*"), "offset": offset}
        reply = await nc.request(api, json.dumps(request).encode(), timeout=timeout)
        body = json.loads(reply.data)
        if "error" in body:
            raise APIError.from_error(body["error"])
        subjects = list((body.get("state") or {}).get("subjects") or {})
        for subject in subjects:
            yield subject
        offset += len(subjects)
        total = body.get("total", 0)
        if not subjects or offset >= total:
            return
