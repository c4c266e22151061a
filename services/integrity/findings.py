"""What the read models remember against what the stream holds now: pure checks, stable finding codes.

The read models are a second copy of the history (design.md §2 "Loss is detected, never
absorbed"). Everything here is a pure function of two small records — what PostgreSQL
remembers, what JetStream reports — so each rule is tested by hand (tests/unit/test_integrity.py)
and the same rules serve the read side's monitor, the projector's gate and `ledger verify`.

Codes are part of the operator's interface (alarms, /ready, `GET /v1/verify`): never rename one.
"""
from __future__ import annotations

import datetime as dt

import msgspec

# The stream is not the one the read models were built from (or lost part of it): nothing may be
# decided or folded until an operator restores it or accepts the loss.
STREAM_MISSING = "stream_missing"                       # no stream LEDGER, though the read models hold events
STREAM_RECREATED = "stream_recreated"                   # its creation time is not the remembered one
STREAM_BEHIND_CHECKPOINT = "stream_behind_checkpoint"   # last sequence below a projection's checkpoint
STREAM_BEHIND_HIGH_WATER = "stream_behind_high_water"   # last sequence below the highest ever seen
FIRST_SEQ_MOVED = "first_seq_moved"                     # LEDGER never deletes: its first sequence is 1
STREAM_HAS_HOLES = "stream_has_holes"                   # deleted sequences inside a stream that denies deletes
UNRESTORED_LOSS = "unrestored_loss"                     # `ledger restore` could not put every sequence back
RESTORE_IN_PROGRESS = "restore_in_progress"             # `ledger restore` is rebuilding the stream
SEAL_KEY_MISMATCH = "seal_key_mismatch"                 # the checking process has another seal key than the ledger
# One person's history: only that person is refused.
PERSON_HEAD_MISSING = "person_head_missing"             # the projected last commit is no longer on the subject
PERSON_HEAD_DIFFERS = "person_head_differs"             # the commit there now is not the one projected
FORGED_MESSAGE = "forged_message"                       # a message the ledger did not seal (or a broken link)

# Only the adjudicator's guard uses these: it cannot read the record of what the read side found.
INTEGRITY_STATE_UNSEALED = "integrity_state_unsealed"  # LEDGER_INTEGRITY written or deleted without the key
NOT_CHECKED = "not_checked"                             # before the first check

# What stops the projector: the stream is not (all of) the one its checkpoints count in.
NOT_THE_SAME_STREAM = frozenset({STREAM_MISSING, STREAM_RECREATED, STREAM_BEHIND_CHECKPOINT, STREAM_BEHIND_HIGH_WATER,
                                 FIRST_SEQ_MOVED, STREAM_HAS_HOLES, SEAL_KEY_MISMATCH})
WHOLE_STREAM = NOT_THE_SAME_STREAM | {UNRESTORED_LOSS, RESTORE_IN_PROGRESS, INTEGRITY_STATE_UNSEALED, NOT_CHECKED}
ALL_CODES = (*sorted(WHOLE_STREAM - {NOT_CHECKED}), PERSON_HEAD_MISSING, PERSON_HEAD_DIFFERS, FORGED_MESSAGE)


class Finding(msgspec.Struct, frozen=True, omit_defaults=True):
    code: str
    detail: str
    person_key: str | None = None      # never a psn_no
    subject: str | None = None
    seq: int | None = None

    @property
    def whole_stream(self) -> bool:
        """Stops every decision, not one person's: a stream-level finding, a forged reference commit, or
        a person finding that names no person (too many persons to list)."""
        return self.code in WHOLE_STREAM or self.person_key is None


class Baseline(msgspec.Struct, frozen=True):
    """What PostgreSQL remembers of the stream (table integrity_baseline, migration 0003)."""
    stream_created: dt.datetime
    high_water: int = 0                # the highest last sequence the read side has seen
    epoch: int = 0                     # bumped by every restore and accepted loss
    unrestored: str | None = None      # what a restore could not put back, until the loss is accepted
    holding: str | None = None         # a restore under way
    seal_key_id: str | None = None     # which key the ledger seals with (events/chain.py seal_key_id)


class StreamSeen(msgspec.Struct, frozen=True):
    """What JetStream reports of the stream now (stream info)."""
    exists: bool
    created: dt.datetime | None = None
    first_seq: int = 0
    last_seq: int = 0
    num_deleted: int = 0


def check_stream(baseline: Baseline | None, checkpoints: dict[str, int], seen: StreamSeen,
                 key_id: str | None = None) -> list[Finding]:
    """The stream-level findings; none for a new ledger (nothing remembered, nothing projected).

    `key_id` is the checking process's seal key id: with another key than the ledger's, every commit
    would look forged, so that is said first and instead."""
    if baseline is not None and baseline.seal_key_id and key_id and key_id != baseline.seal_key_id:
        return [Finding(SEAL_KEY_MISMATCH, f"this process seals with key {key_id}, the ledger with "
                                           f"{baseline.seal_key_id}: set LEDGER_SEAL_SECRET as the others have it")]
    furthest = max(checkpoints.values(), default=0)
    if not seen.exists:
        if baseline is None and furthest == 0:
            return []
        return [Finding(STREAM_MISSING, f"no stream; the read models are at sequence {furthest}")]
    found = []
    if baseline is not None and seen.created != baseline.stream_created:
        found.append(Finding(STREAM_RECREATED, f"stream created {_iso(seen.created)}; the read models were "
                                               f"projected from the one created {_iso(baseline.stream_created)}"))
    behind = {name: seq for name, seq in sorted(checkpoints.items()) if seq > seen.last_seq}
    if behind:
        found.append(Finding(STREAM_BEHIND_CHECKPOINT, f"last sequence {seen.last_seq}; checkpoints " +
                             ", ".join(f"{name} {seq}" for name, seq in behind.items())))
    if baseline is not None and seen.last_seq < baseline.high_water:
        found.append(Finding(STREAM_BEHIND_HIGH_WATER,
                             f"last sequence {seen.last_seq}; the stream once reached {baseline.high_water}"))
    if seen.first_seq > 1:
        found.append(Finding(FIRST_SEQ_MOVED, f"first sequence {seen.first_seq}: sequences 1-{seen.first_seq - 1} "
                                              "are gone"))
    if seen.num_deleted:
        found.append(Finding(STREAM_HAS_HOLES, f"{seen.num_deleted} sequences up to {seen.last_seq} are gone"))
    if baseline is not None and baseline.unrestored:
        found.append(Finding(UNRESTORED_LOSS, baseline.unrestored))
    if baseline is not None and baseline.holding:
        found.append(Finding(RESTORE_IN_PROGRESS, baseline.holding))
    return found


class SubjectSeen(msgspec.Struct, frozen=True):
    """One person's subject now: its last message, and the message at the projected head's sequence."""
    last_seq: int = 0                      # 0: the subject is empty
    last_head: str | None = None           # the hash its last event claims
    last_unsealed: str | None = None       # why the last message is not a commit the ledger sealed
    head_at_projected: str | None = None   # when last_seq is later: the head of the commit at the projected seq


def check_person(person_key: str, subject: str, projected_seq: int, projected_head: str,
                 seen: SubjectSeen) -> Finding | None:
    """Same seq and head, or a later sequence with the projected commit still in place; else a finding."""
    if seen.last_unsealed is not None:
        return Finding(FORGED_MESSAGE, f"last message: {seen.last_unsealed}", person_key, subject, seen.last_seq)
    if seen.last_seq < projected_seq:
        where = f"ends at sequence {seen.last_seq}" if seen.last_seq else "is empty"
        return Finding(PERSON_HEAD_MISSING, f"projected up to sequence {projected_seq}; the subject {where}",
                       person_key, subject, projected_seq)
    head = seen.last_head if seen.last_seq == projected_seq else seen.head_at_projected
    if head is None:
        return Finding(PERSON_HEAD_MISSING, f"the commit projected at sequence {projected_seq} is no longer "
                                            "on the subject", person_key, subject, projected_seq)
    if head != projected_head:
        return Finding(PERSON_HEAD_DIFFERS, f"the commit at sequence {projected_seq} ends in {head[:12]}…, "
                                            f"projected {projected_head[:12]}…", person_key, subject, projected_seq)
    return None


def summary(findings: list[Finding]) -> str:
    """One line for /ready and logs: each code with its count, the first detail of each."""
    if not findings:
        return "ok"
    by_code: dict[str, list[Finding]] = {}
    for f in findings:
        by_code.setdefault(f.code, []).append(f)
    return "; ".join(f"{code} ×{len(fs)}: {fs[0].detail}" if len(fs) > 1 else f"{code}: {fs[0].detail}"
                     for code, fs in by_code.items())


def _iso(when: dt.datetime | None) -> str:
    return when.isoformat() if when is not None else "?"
