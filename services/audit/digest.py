"""Signed digests for supervisors (the model of QLDB's digests; design.md §2, ADR 0011).

`issue` reads the stream up to a sequence, refuses if any person's chain is
broken there (a digest certifies a verified history), and signs the result
with the ledger's key. `check` recomputes the same heads from the stream as it
is now and names every subject whose history up to that sequence differs.

What is signed is a short text, so it can be rebuilt without this code:
``claims-ledger digest v1`` then ``name=value`` lines for stream,
stream_created, upto, subjects, algorithm, digest, key_id and issued_at, in
that order, each ending in ``\\n``; values are the strings of the digest's JSON
(times as written there). The signature is Ed25519 over those UTF-8 bytes,
base64 in the file.
"""
from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from projections.digest import Difference, StreamHeads, SubjectHead, differences, heads_digest, stream_heads
from services.runtime.signing import SigningKey, key_id, verify
from events.subjects import STREAM

ALGORITHM = "sha256-heads/ed25519"
_SIGNED = ("stream", "stream_created", "upto", "subjects", "algorithm", "digest", "key_id", "issued_at")


class Digest(msgspec.Struct, kw_only=True):
    stream: str
    stream_created: dt.datetime | None
    upto: int
    subjects: int
    digest: str
    algorithm: str = ALGORITHM
    key_id: str
    issued_at: dt.datetime
    signature: str = ""
    heads: list[SubjectHead] = []


class DigestCheck(msgspec.Struct):
    ok: bool
    signature_ok: bool
    heads_ok: bool                      # the file's heads hash to its signed digest
    stream: str
    upto: int
    stream_last_seq: int
    stream_created_then: dt.datetime | None
    stream_created_now: dt.datetime | None
    recreated: bool                     # the stream was created again since (its history may still match)
    subjects: int
    differences: list[Difference]
    first_difference: Difference | None
    problems: list[str]
    seconds: float


class ChainBroken(ValueError):
    """The stream has a chain break at or before the sequence asked for: no digest is signed over it."""


DECODER = msgspec.json.Decoder(Digest)
ENCODER = msgspec.json.Encoder()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return ENCODER.encode(value).decode().strip('"')
    return str(value)


def signed_payload(d: Digest) -> bytes:
    lines = ["claims-ledger digest v1", *(f"{name}={_text(getattr(d, name))}" for name in _SIGNED)]
    return ("\n".join(lines) + "\n").encode()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def issue(js: Any, key: SigningKey, upto: int | None = None, *, seal_key: bytes, stream: str = STREAM,
                clock: Callable[[], dt.datetime] = _now,
                progress: Callable[[int, int], None] | None = None) -> Digest:
    if upto is not None and upto < 1:
        raise ValueError("upto must be a stream sequence (1 or more)")
    found = await stream_heads(js, upto, seal_key=seal_key, stream=stream, progress=progress)
    if upto is not None and upto > found.last_seq:
        raise ValueError(f"upto {upto} is past the stream's last sequence {found.last_seq}")
    if found.breaks:
        b = found.breaks[0]
        raise ChainBroken(f"{len(found.breaks)} chain(s) broken up to sequence {found.upto}; the first: person "
                          f"{b.person_key} at sequence {b.seq} ({b.reason}). Run `ledger verify`.")
    digest = Digest(stream=stream, stream_created=found.created, upto=found.upto, subjects=len(found.heads),
                    digest=heads_digest(found.heads), key_id=key.key_id, issued_at=clock(), heads=found.heads)
    digest.signature = key.sign(signed_payload(digest))
    return digest


async def check(js: Any, digest: Digest, public: Ed25519PublicKey, *, seal_key: bytes, stream: str | None = None,
                progress: Callable[[int, int], None] | None = None) -> DigestCheck:
    """Whether the stream still holds exactly the history `digest` was signed over."""
    started = time.perf_counter()
    problems = []
    signature_ok = key_id(public) == digest.key_id and verify(public, signed_payload(digest), digest.signature)
    if not signature_ok:
        problems.append("the signature does not verify with this public key (key id "
                        f"{key_id(public)}, digest signed by {digest.key_id})")
    heads_ok = heads_digest(digest.heads) == digest.digest and len(digest.heads) == digest.subjects
    if not heads_ok:
        problems.append("the digest file's heads do not hash to its signed digest: the file was edited")
    found: StreamHeads = await stream_heads(js, digest.upto, seal_key=seal_key, stream=stream or digest.stream,
                                            progress=progress)
    if found.upto < digest.upto:
        problems.append(f"the stream ends at sequence {found.last_seq}, before the digest's {digest.upto}")
    diffs = differences(digest.heads, found)
    if diffs:
        problems.append(f"{len(diffs)} subject(s) differ from the digest; the first: {_name(diffs[0])}")
    then, now = digest.stream_created, found.created
    recreated = then is not None and now is not None and now != then
    return DigestCheck(ok=not problems, signature_ok=signature_ok, heads_ok=heads_ok, stream=found.stream,
                       upto=digest.upto, stream_last_seq=found.last_seq, stream_created_then=digest.stream_created,
                       stream_created_now=found.created, recreated=recreated, subjects=digest.subjects,
                       differences=diffs, first_difference=diffs[0] if diffs else None, problems=problems,
                       seconds=round(time.perf_counter() - started, 3))


def _name(d: Difference) -> str:
    who = f"person {d.person_key}" if d.person_key else f"subject {d.subject}"
    return f"{who} ({d.kind}: {d.detail})"
