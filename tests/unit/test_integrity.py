"""The loss checks by hand: what the read models remember against what the stream reports (ADR 0010)."""
from __future__ import annotations

import datetime as dt
import time

import pytest

from services.integrity import findings as fc
from services.integrity.findings import Baseline, Finding, StreamSeen, SubjectSeen, check_person, check_stream, summary
from services.integrity.state import IntegrityState, Unsealed, decode_state, encode_state

T0 = dt.datetime(2022, 12, 1, 8, 0, 0, 123456, tzinfo=dt.timezone.utc)
T1 = T0 + dt.timedelta(hours=3)
ALL = {"claims": 11, "audit_trail": 11, "dead_letters": 11}


def codes(found: list[Finding]) -> list[str]:
    return [f.code for f in found]


def test_a_new_ledger_has_nothing_to_find() -> None:
    assert check_stream(None, {}, StreamSeen(exists=False)) == []
    assert check_stream(None, {"claims": 0}, StreamSeen(True, T0, 0, 0)) == []
    assert check_stream(Baseline(T0, 11), ALL, StreamSeen(True, T0, 1, 11)) == []
    assert check_stream(Baseline(T0, 11), ALL, StreamSeen(True, T0, 1, 40)) == []     # projector behind: fine


def test_the_reported_bug_deleted_and_recreated_is_three_findings() -> None:
    """Checkpoint 11 against a new stream whose last sequence is 1 (its pack activation)."""
    found = check_stream(Baseline(T0, high_water=11), ALL, StreamSeen(True, T1, 1, 1))
    assert codes(found) == [fc.STREAM_RECREATED, fc.STREAM_BEHIND_CHECKPOINT, fc.STREAM_BEHIND_HIGH_WATER]
    assert found[1].detail == "last sequence 1; checkpoints audit_trail 11, claims 11, dead_letters 11"
    assert all(f.whole_stream for f in found)


def test_a_missing_stream_is_found_only_when_something_was_projected() -> None:
    assert codes(check_stream(Baseline(T0, 11), ALL, StreamSeen(exists=False))) == [fc.STREAM_MISSING]
    assert codes(check_stream(None, {"claims": 3}, StreamSeen(exists=False))) == [fc.STREAM_MISSING]


def test_truncation_seen_by_nats_server_two_ways() -> None:
    """Measured with nats-server 2.15 (ADR 0010): a .blk cut by a third keeps last_seq 20 and reports
    7 deleted; cut with its index.db gone, the stream restarts at last_seq 13, same creation time."""
    kept_index = check_stream(Baseline(T0, 20), {"claims": 20}, StreamSeen(True, T0, 1, 20, num_deleted=7))
    assert codes(kept_index) == [fc.STREAM_HAS_HOLES]
    lost_index = check_stream(Baseline(T0, 20), {"claims": 18}, StreamSeen(True, T0, 1, 13))
    assert codes(lost_index) == [fc.STREAM_BEHIND_CHECKPOINT, fc.STREAM_BEHIND_HIGH_WATER]
    unprojected_tail = check_stream(Baseline(T0, 20), {"claims": 12}, StreamSeen(True, T0, 1, 13))
    assert codes(unprojected_tail) == [fc.STREAM_BEHIND_HIGH_WATER]       # the read models never had 14-20


def test_a_moved_first_sequence_restore_and_key() -> None:
    assert codes(check_stream(Baseline(T0, 11), ALL, StreamSeen(True, T0, 5, 11))) == [fc.FIRST_SEQ_MOVED]
    held = check_stream(Baseline(T0, 11, unrestored="sequences 12-15 …", holding="ledger restore started"), ALL,
                        StreamSeen(True, T0, 1, 11))
    assert codes(held) == [fc.UNRESTORED_LOSS, fc.RESTORE_IN_PROGRESS]
    other_key = check_stream(Baseline(T0, 11, seal_key_id="aaaa"), ALL, StreamSeen(True, T1, 1, 1), key_id="bbbb")
    assert codes(other_key) == [fc.SEAL_KEY_MISMATCH]        # said instead: everything else would be noise
    assert check_stream(Baseline(T0, 11, seal_key_id="aaaa"), ALL, StreamSeen(True, T0, 1, 11), key_id="aaaa") == []


HEAD = "ab" * 32


@pytest.mark.parametrize(("seen", "expected"), [
    (SubjectSeen(40, HEAD), None),                                      # the same commit, still last
    (SubjectSeen(52, "cd" * 32, None, HEAD), None),                     # later commits, ours still in place
    (SubjectSeen(40, "cd" * 32), fc.PERSON_HEAD_DIFFERS),               # same place, another commit
    (SubjectSeen(52, "cd" * 32, None, "ef" * 32), fc.PERSON_HEAD_DIFFERS),
    (SubjectSeen(52, "cd" * 32, None, None), fc.PERSON_HEAD_MISSING),   # ours gone from under later ones
    (SubjectSeen(33, "cd" * 32), fc.PERSON_HEAD_MISSING),               # the subject ends before it
    (SubjectSeen(), fc.PERSON_HEAD_MISSING),                            # the subject is empty
    (SubjectSeen(41, None, "no seal"), fc.FORGED_MESSAGE),
])
def test_one_person_against_their_subject(seen: SubjectSeen, expected: str | None) -> None:
    found = check_person("k" * 32, "ledger.person." + "k" * 32, 40, HEAD, seen)
    assert (found.code if found else None) == expected
    if found is not None:
        assert found.person_key == "k" * 32 and not found.whole_stream


def test_only_findings_naming_no_person_hold_everyone() -> None:
    assert Finding(fc.FORGED_MESSAGE, "no seal", None, "ledger.ref.medins", 9).whole_stream
    assert not Finding(fc.FORGED_MESSAGE, "no seal", "k" * 32, "ledger.person.k", 9).whole_stream
    assert Finding(fc.PERSON_HEAD_MISSING, "1500 persons affected").whole_stream
    assert summary([]) == "ok"
    assert summary([Finding(fc.PERSON_HEAD_MISSING, "a", "k1"), Finding(fc.PERSON_HEAD_MISSING, "b", "k2")]) == \
        "person_head_missing ×2: a"


def test_the_integrity_record_is_sealed_and_cannot_be_edited_or_forged() -> None:
    key = b"unit-test-seal-key-0123456789"
    state = IntegrityState(T0.isoformat(), 11, 2, [Finding(fc.STREAM_RECREATED, "x")], written_by="read side")
    data = encode_state(key, state)
    assert decode_state(key, data) == msgspec_replace_seal(decode_state(key, data), state)
    with pytest.raises(Unsealed):
        decode_state(key, data.replace(b'"stream_recreated"', b'"stream_missing"'))   # a hold changed
    with pytest.raises(Unsealed):
        decode_state(b"another-key-0123456789abcdef", data)
    cleared = data.replace(b'[{"code":"stream_recreated","detail":"x"}]', b"[]")
    assert cleared != data
    with pytest.raises(Unsealed):
        decode_state(key, cleared)                                                    # a hold cleared
    with pytest.raises(Unsealed):
        decode_state(key, b"not json")


def msgspec_replace_seal(decoded: IntegrityState, original: IntegrityState) -> IntegrityState:
    import msgspec
    return msgspec.structs.replace(original, seal=decoded.seal)


def test_the_person_sweep_rests_between_rounds_but_never_mid_round() -> None:
    """A round begins at most every `round_every` s; a round that has begun goes on page by page."""
    from services.integrity.monitor import IntegrityMonitor
    monitor = IntegrityMonitor(pool=None, js=None, seal_key=b"k" * 32, round_every=30.0)
    assert monitor._sweep_due()                          # never swept: due
    monitor._round_began, monitor._cursor = time.monotonic(), "pk-0250"
    assert monitor._sweep_due()                          # mid-round: due whatever the time
    monitor._cursor = ""                                 # came round to the start just now
    assert not monitor._sweep_due()
    monitor._round_began -= 30.0
    assert monitor._sweep_due()                          # 30 s since that round began
    eager = IntegrityMonitor(pool=None, js=None, seal_key=b"k" * 32, round_every=0)
    eager._round_began = time.monotonic()
    assert eager._sweep_due()                            # round_every 0: round after round, as before
