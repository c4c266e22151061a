"""The stream's digest up to a sequence: one hash over every subject's head (design.md §2, ADR 0011).

Definition (what a supervisor recomputes, byte for byte):

* For each subject of stream LEDGER with a message at sequence ≤ ``upto``, one
  line ``"<subject> <seq> <head>\\n"``: ``seq`` is the subject's last sequence
  ≤ ``upto`` (decimal), ``head`` 64 lower-case hex digits:
  - a person subject (``ledger.person.<person_key>``): the ``hash`` of its last
    event, once its whole chain up to there verifies (events/chain.py);
  - any other subject (``ledger.ref.<kind>``: hospitals, packs, year closes,
    dead letters), which is not one chain: ``h_n = SHA-256(h_{n-1} ‖ commit_n)``
    over the stored bytes of its commits in order, ``h_0`` the empty string,
    ``h_{n-1}`` taken as its 64 ASCII hex digits.
* The lines sorted by subject (bytewise), concatenated, UTF-8; the digest is
  their SHA-256, hex. (``jq -r '.heads[] | "\\(.subject) \\(.seq) \\(.head)"'
  digest.json | sha256sum`` gives it from a digest file.)

The heads themselves are kept in the digest file, so a later check names the
subjects whose history differs rather than only saying that one does.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from events.chain import GENESIS
from projections.decode import person_key_of
from projections.source import read_upto
from projections.verify import Break, Chains
from events.subjects import STREAM


class SubjectHead(msgspec.Struct, frozen=True):
    subject: str
    seq: int             # the subject's last sequence ≤ upto
    head: str            # chain head (person) or running hash of its commits (any other subject)


class StreamHeads(msgspec.Struct):
    stream: str
    created: dt.datetime | None     # the stream's creation time, as the server reports it now
    last_seq: int                   # the stream's last sequence when read
    upto: int                       # heads cover sequences 1..upto (upto ≤ last_seq)
    messages: int
    heads: list[SubjectHead]
    breaks: list[Break]


class Difference(msgspec.Struct, frozen=True):
    subject: str
    person_key: str | None
    kind: str            # changed | missing | added | chain_break
    digest_seq: int | None
    digest_head: str | None
    found_seq: int | None
    found_head: str | None
    detail: str


def head_lines(heads: Iterable[SubjectHead]) -> bytes:
    return b"".join(f"{h.subject} {h.seq} {h.head}\n".encode() for h in sorted(heads, key=_by_subject))


def _by_subject(h: SubjectHead) -> bytes:
    return h.subject.encode()


def heads_digest(heads: Iterable[SubjectHead]) -> str:
    return hashlib.sha256(head_lines(heads)).hexdigest()


def ref_link(prev: str, commit: bytes) -> str:
    """The running hash of a subject that is not a chain, after one more commit."""
    return hashlib.sha256(prev.encode() + commit).hexdigest()


async def stream_heads(js: Any, upto: int | None = None, *, seal_key: bytes, stream: str = STREAM,
                       progress: Callable[[int, int], None] | None = None) -> StreamHeads:
    """Every subject's head as of `upto` (default: the stream's last sequence), in one in-order pass.

    The stream being shorter than `upto` is not an error here: heads cover what it holds, and
    `StreamHeads.upto` says how far (the comparison then reports the subjects it lacks)."""
    info = await js.stream_info(stream)
    last = int(info.state.last_seq or 0)
    upto = last if upto is None else min(upto, last)
    chains, seqs, running = Chains(seal_key), {}, {}
    messages = 0
    async for batch in read_upto(js, upto, stream=stream, held=int(info.state.messages or 0), progress=progress):
        for raw in batch:
            messages += 1
            seqs[raw.subject] = raw.seq
            if person_key_of(raw.subject) is None:
                running[raw.subject] = ref_link(running.get(raw.subject, GENESIS), raw.data)
            chains.add(raw.subject, raw.seq, raw.data)       # chains, and every commit's seal (ADR 0010)
    heads = [SubjectHead(subject, seq, running[subject] if subject in running else chains.heads[subject])
             for subject, seq in seqs.items()]
    return StreamHeads(stream, info.created, last, upto, messages, sorted(heads, key=_by_subject), chains.breaks)


def differences(kept: Iterable[SubjectHead], found: StreamHeads) -> list[Difference]:
    """Where the stream as read now differs from the heads a digest kept, in subject order."""
    then = {h.subject: h for h in kept}
    now = {h.subject: h for h in found.heads}
    broken = {b.subject: b for b in found.breaks}
    out = []
    for subject in sorted(then.keys() | now.keys(), key=str.encode):
        a, b = then.get(subject), now.get(subject)
        if subject in broken and a is not None:
            brk = broken[subject]
            kind, detail = "chain_break", f"{brk.reason} at sequence {brk.seq} (event {brk.event_id or '?'})"
        elif b is None:
            kind, detail = "missing", f"the stream holds nothing on this subject up to sequence {found.upto}"
        elif a is None:
            kind, detail = "added", "history on this subject that the digest does not have"
        elif (a.seq, a.head) != (b.seq, b.head):
            kind, detail = "changed", "the subject's head differs from the digest's"
        else:
            continue
        out.append(Difference(subject, person_key_of(subject), kind, a and a.seq, a and a.head, b and b.seq,
                              b and b.head, detail))
    return out
