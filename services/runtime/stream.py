"""The LEDGER stream: its settings, and fast reads of one subject.

Why: the stream is the source of truth (design §2), so its guard rails
(file storage, no deletes, no purges, no limits that would age events out)
are asserted at every start rather than trusted to whoever created it.

Behaviours measured against nats-server 2.15.1 with nats-py 2.16:

* ``js.publish(subject, data, headers={"Nats-Expected-Last-Subject-Sequence":
  str(n)})`` on a stale ``n`` raises ``nats.js.errors.BadRequestError`` (an
  ``APIError``) with ``code=400``, ``err_code=10071``, description
  ``"wrong last sequence: <actual>"``. Nothing is stored. The header value is
  compared with the last sequence on the *publish subject*.
* Expecting ``"0"`` succeeds on a subject with no messages (a new person) and
  fails with 10071 once the subject has one.
* ``Nats-Msg-Id`` repeats within ``duplicate_window`` return the first PubAck
  with ``duplicate=True`` (same seq); they are not errors.
* With ``deny_delete``/``deny_purge``: message delete gives ``ServerError``
  err_code 10057, purge 10110; an update cannot switch the flags off (10052),
  nor change storage (10052). Re-creating with the same config is a no-op,
  with a different one ``BadRequestError`` 10058.
* ``stream_info`` of a missing stream raises ``NotFoundError`` (err_code 10059).
* Direct get of a missing last-by-subject raises ``NotFoundError`` with no
  codes; it answers in well under a millisecond.

Direct gets may be answered by any replica of an R3 stream, so a read can be
a little behind the leader. That is safe here: a writer that decides on a
stale read publishes with a stale expected sequence and gets 10071.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any, NamedTuple

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

__all__ = [
    "DUPLICATE_WINDOW_S",
    "KEY_SUBJECT",
    "PERSON_SUBJECT",
    "REF_SUBJECT",
    "STREAM",
    "SUBJECTS",
    "StoredMsg",
    "ensure_ledger_stream",
    "last_subject_sequence",
    "read_subject",
]

STREAM = "LEDGER"
PERSON_SUBJECT = "ledger.person.{}"
REF_SUBJECT = "ledger.ref.{}"
KEY_SUBJECT = "ledger.ref.key.{}"          # a global key's claim (setl_id, grant_id), by keyed hash (ADR 0013)
SUBJECTS = ["ledger.person.*", "ledger.ref.*", "ledger.ref.key.*"]
DUPLICATE_WINDOW_S = 120.0
EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
WRONG_LAST_SEQUENCE = 10071  # JetStream err_code for a failed expected-sequence check

# Settings asserted on every start: changing any of these changes what the ledger guarantees.
_REQUIRED: dict[str, Any] = {
    "deny_delete": True,
    "deny_purge": True,
    "allow_direct": True,
    "duplicate_window": DUPLICATE_WINDOW_S,
    "discard": DiscardPolicy.OLD,
    "max_msgs": -1,
    "max_bytes": -1,
    "max_age": 0.0,
    "max_msgs_per_subject": -1,
}


def _supports(name: str) -> bool:
    return name in {f.name for f in fields(StreamConfig)}


async def ensure_ledger_stream(
    js: Any, *, replicas: int | None = None, allow_atomic: bool = True
) -> StreamInfo:
    """Create stream LEDGER, or bring an existing one to the required settings; never delete.

    ``replicas`` applies on create (default 1) and, if given, on update.
    ``allow_atomic=True`` turns on atomic batch publish (server 2.12+), which a
    decision that claims a global key needs (ADR 0013); False leaves the current
    value alone. Raises ``RuntimeError`` if the stream exists with a storage or
    retention that cannot be changed in place.
    """
    if allow_atomic and not _supports("allow_atomic"):
        raise RuntimeError("allow_atomic needs nats-py >= 2.12 (StreamConfig.allow_atomic)")
    extra: dict[str, Any] = {"allow_atomic": True} if allow_atomic else {}
    try:
        info: StreamInfo = await js.stream_info(STREAM)
    except NotFoundError:
        config = StreamConfig(
            name=STREAM,
            subjects=list(SUBJECTS),
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            num_replicas=replicas or 1,
            max_msg_size=-1,
            **_REQUIRED,
            **extra,
        )
        # A concurrent creator with the same config makes this a no-op, not an error.
        return await js.add_stream(config)

    current = info.config
    if current.storage != StorageType.FILE:
        raise RuntimeError(f"stream {STREAM} uses {current.storage} storage; the ledger needs file storage")
    if current.retention != RetentionPolicy.LIMITS:
        raise RuntimeError(f"stream {STREAM} has {current.retention} retention; the ledger needs limits")
    changes = {k: v for k, v in {**_REQUIRED, **extra}.items() if getattr(current, k) != v}
    subjects = list(current.subjects or [])
    missing = [s for s in SUBJECTS if s not in subjects]
    if missing:
        changes["subjects"] = subjects + missing  # keep any extra subjects an operator added
    if replicas is not None and current.num_replicas != replicas:
        changes["num_replicas"] = replicas
    if not changes:
        return info
    return await js.update_stream(current.evolve(**changes))


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
