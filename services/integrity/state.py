"""The integrity state every adjudicator reads: KV bucket LEDGER_INTEGRITY, key ``state`` (ADR 0010).

Why a KV bucket beside LEDGER, not a subject in it: it must outlive the stream it describes. When
LEDGER is deleted or its files are lost, the record of which stream the ledger was built on (its
creation time, the highest sequence seen) is still here, so an adjudicator — which has no
PostgreSQL — can tell by itself that the stream it sees is not that one.

The read side (services/integrity/monitor.py) writes it from what PostgreSQL remembers, and is its
authority; an adjudicator only creates it when the bucket is new (a new ledger). The record is
sealed with the ledger's seal key: whoever can write the bucket without the key can stop the
ledger (an unsealed record holds it) but cannot clear a hold.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Any

import msgspec
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError

from events.chain import Unsealed
from services.integrity.findings import Finding

__all__ = ["BUCKET", "IntegrityState", "Unsealed", "bucket", "create_state", "decode_state", "encode_state",
           "read_state", "recorded", "write_state"]

BUCKET = "LEDGER_INTEGRITY"
KEY = "state"
_DOMAIN = b"claims-ledger integrity state v1\0"
_ENCODER = msgspec.json.Encoder()


class IntegrityState(msgspec.Struct, frozen=True):
    stream_created: str | None          # ISO time of the stream the ledger is built on
    high_water: int                     # highest last sequence seen on it
    epoch: int                          # bumped by a restore or an accepted loss: caches start again
    findings: list[Finding] = []        # what the read side found; whole-stream ones stop every decision
    written_by: str = ""
    seal: str = ""


def _mac(key: bytes, state: IntegrityState) -> str:
    body = _ENCODER.encode(msgspec.structs.replace(state, seal=""))
    return hmac.new(key, _DOMAIN + body, hashlib.sha256).hexdigest()


def encode_state(key: bytes, state: IntegrityState) -> bytes:
    return _ENCODER.encode(msgspec.structs.replace(state, seal=_mac(key, state)))


def decode_state(key: bytes, data: bytes) -> IntegrityState:
    try:
        state = msgspec.json.decode(data, type=IntegrityState)
    except (msgspec.DecodeError, ValueError) as exc:
        raise Unsealed(f"integrity state is not readable: {exc}") from None
    if not state.seal or not hmac.compare_digest(_mac(key, state), state.seal):
        raise Unsealed("integrity state is not sealed with this process's seal key (another LEDGER_SEAL_SECRET?)")
    return state


async def bucket(js: Any, replicas: int | None = None) -> Any:
    """The bucket, created (file storage, some history for the operator) when missing."""
    try:
        return await js.key_value(BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(KeyValueConfig(bucket=BUCKET, history=16, storage=StorageType.FILE,
                                                        replicas=replicas or 1,
                                                        description="claims-ledger loss detection (ADR 0010)"))


async def recorded(js: Any, key: bytes) -> IntegrityState | None:
    """The record if the bucket exists (never creating it); `Unsealed` as `read_state`."""
    try:
        kv = await js.key_value(BUCKET)
    except BucketNotFoundError:
        return None
    return await read_state(kv, key)


async def read_state(kv: Any, key: bytes) -> IntegrityState | None:
    """The record, None if never written; `Unsealed` if someone else wrote or deleted it."""
    try:
        entry = await kv.get(KEY)
    except KeyDeletedError:
        raise Unsealed("integrity state was deleted") from None
    except KeyNotFoundError:
        return None
    if entry.value is None:
        return None
    return decode_state(key, entry.value)


async def write_state(kv: Any, key: bytes, state: IntegrityState) -> None:
    await kv.put(KEY, encode_state(key, state))


async def create_state(kv: Any, key: bytes, state: IntegrityState) -> bool:
    """Write the record only if there is none; False if someone else wrote one first."""
    try:
        await kv.create(KEY, encode_state(key, state))
    except KeyWrongLastSequenceError:
        return False
    return True
