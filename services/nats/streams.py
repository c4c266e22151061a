"""The ledger's streams and their settings: LEDGER (the source of truth) and PLATFORM_IN (the feed).

Why: the stream is the source of truth (design §2), so its guard rails
(file storage, no deletes, no purges, no limits that would age events out)
are asserted at every start rather than trusted to whoever created it.
Who may create them: services/nats/provision.py. Reading them: services/nats/reads.py.

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
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from nats.js.api import (AckPolicy, ConsumerConfig, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig,
                         StreamInfo)
from nats.js.errors import NotFoundError

from events.subjects import STREAM, SUBJECTS
from services.nats.feed_config import FeedConfig

__all__ = ["DUPLICATE_WINDOW_S", "WRONG_LAST_SEQUENCE", "ensure_inbound", "ensure_inbound_stream",
           "ensure_ledger_stream"]

DUPLICATE_WINDOW_S = 120.0
WRONG_LAST_SEQUENCE = 10071  # JetStream err_code for a failed expected-sequence check



def actual_last(exc: Exception) -> int | None:
    """The subject's last sequence a 10071 names ("wrong last sequence: 40"), if it does."""
    tail = str(getattr(exc, "description", "") or "").rpartition(":")[2].strip()
    return int(tail) if tail.isdigit() else None


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


async def ensure_inbound_stream(js: Any, config: FeedConfig = FeedConfig()) -> None:
    """Create (or check) the inbound work-queue stream (creating needs NATS admin rights)."""
    try:
        info = await js.stream_info(config.stream)
    except NotFoundError:
        await js.add_stream(StreamConfig(
            name=config.stream, subjects=list(config.subjects), retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE, discard=DiscardPolicy.OLD, num_replicas=config.replicas,
            duplicate_window=120.0))
    else:
        if info.config.retention != RetentionPolicy.WORK_QUEUE:
            raise RuntimeError(f"stream {config.stream} exists with {info.config.retention} retention; "
                               "the inbound feed needs a work queue")


async def ensure_inbound(js: Any, config: FeedConfig = FeedConfig()) -> None:
    """Check the inbound stream and create-or-update the durable pull consumer."""
    await ensure_inbound_stream(js, config)
    await js.add_consumer(config.stream, ConsumerConfig(
        name=config.durable, durable_name=config.durable, ack_policy=AckPolicy.EXPLICIT,
        # No limit at the server: a message NATS could not store now is tried as long as it takes; the
        # poison threshold (`max_deliver`) is the feed's, counted only while deciding it crashes.
        ack_wait=config.ack_wait, max_deliver=-1, max_ack_pending=config.max_ack_pending,
        filter_subjects=list(config.subjects) if len(config.subjects) > 1 else None,
        filter_subject=config.subjects[0] if len(config.subjects) == 1 else None))
