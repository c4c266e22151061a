"""The hash chain is checked over the bytes as written, so it survives additive schema changes."""
from __future__ import annotations

import hashlib

import msgspec
import pytest

from events import ledger as ev
from events.upcast import decode_commit
from events.chain import GENESIS, event_hash, first_break, head_of, seal, seal_stored, stored_hash_ok
from builders import enrolment, identity, medins, stay
from harness import Ledger


def _stored(commit: ev.Commit) -> list[bytes]:
    class RawCommit(msgspec.Struct):
        events: list[msgspec.Raw]
    return [bytes(r) for r in msgspec.json.decode(ev.COMMIT_ENCODER.encode(commit), type=RawCommit).events]


def _person_chain() -> list[bytes]:
    lf = Ledger()
    lf.send(medins(), enrolment("P"), identity("P", "dibao"), stay("S1", "P", total="30000", in_scope="29000",
                                                                     hifp="17400"))
    return [raw for psn, commit in lf.store.commits if psn == "P" for raw in _stored(commit)]


def test_a_sealed_chain_holds_and_its_head_is_the_last_hash() -> None:
    chain = _person_chain()
    assert len(chain) >= 4 and first_break(chain) is None
    events, head = seal([ev.YearClosed(admdvs="141000", year=2022)], GENESIS)
    assert head == events[0].hash == head_of(ev.COMMIT_ENCODER.encode(events[0]))


def test_an_event_written_before_a_field_was_added_still_verifies() -> None:
    """`after_year_close` came later: a facts event written without it must keep its hash. Re-encoding
    the decoded event adds the field's default and no longer matches; the stored bytes do."""
    chain = _person_chain()
    facts_at = next(i for i, raw in enumerate(chain) if b'"hospital_stay_settled_v2"' in raw)
    old_shape = chain[facts_at].replace(b',"after_year_close":false', b"")
    assert old_shape != chain[facts_at]
    blank = old_shape.replace(b'"hash":"' + head_of(old_shape).encode() + b'"', b'"hash":""')
    rehashed = hashlib.sha256(blank).hexdigest()
    old_shape = blank.replace(b'"hash":""', b'"hash":"' + rehashed.encode() + b'"')
    decoded = msgspec.json.decode(old_shape, type=ev.Event)
    assert decoded.after_year_close is False and event_hash(decoded) != rehashed      # re-encoding would fail
    assert stored_hash_ok(old_shape, rehashed)
    assert first_break([old_shape], decoded.prev_hash) is None


def test_an_edited_payload_or_a_wrong_link_is_the_first_break() -> None:
    chain = _person_chain()
    edited = chain[1].replace(b'"year":2022', b'"year":2021', 1)
    found = first_break([chain[0], edited, *chain[2:]])
    assert found is not None and (found.index, found.hash_ok) == (1, False)
    skipped = first_break([chain[0], *chain[2:]])
    assert skipped is not None and skipped.index == 1 and skipped.hash_ok and skipped.expected_prev == head_of(chain[0])
    assert not stored_hash_ok(chain[0], "")            # an unsealed event is no proof


def test_seal_stored_gives_the_bytes_a_commit_of_the_sealed_events_would() -> None:
    """The JetStream store encodes commits around these bytes: they must be exactly the events' encoding."""
    lf = Ledger()
    lf.send(medins(), enrolment("P"), identity("P", "dibao"), stay("S1", "P", total="30000", in_scope="29000",
                                                                     hifp="17400"))
    head = GENESIS
    for psn, commit in lf.store.commits:
        if psn != "P":
            continue
        unsealed = [msgspec.structs.replace(e, prev_hash="", hash="") for e in commit.events]
        sealed, stored, head = seal_stored(unsealed, head)
        assert sealed == commit.events and head == commit.events[-1].hash
        assert ev.COMMIT_ENCODER.encode(msgspec.structs.replace(commit, events=stored)) == \
            ev.COMMIT_ENCODER.encode(commit)


# --- seals (ADR 0010) ---------------------------------------------------------------------

KEY = b"unit-test-seal-key-0123456789"
SUBJECT = "ledger.person." + "a" * 32


def _a_commit() -> ev.Commit:
    lf = Ledger()
    lf.send(medins(), enrolment("P"), stay("S1", "P", total="30000", in_scope="29000", hifp="17400"))
    return next(c for psn, c in lf.store.commits if psn == "P" and c.results and hasattr(c.results[0], "maf_pay"))


def test_a_sealed_commit_reads_back_and_seals_exactly_the_bytes_written() -> None:
    from events.chain import encode_sealed, read_sealed
    commit = _a_commit()
    data = encode_sealed(KEY, SUBJECT, commit)
    view = read_sealed(KEY, SUBJECT, data)
    assert [bytes(r) for r in view.events] == _stored(commit) and view.commit_id == commit.commit_id
    decoded = decode_commit(data)
    assert decoded.seal == view.seal and decoded.events == commit.events and decoded.results == commit.results
    # What the JetStream store publishes (events as seal_stored encoded them) is the same bytes.
    unsealed = [msgspec.structs.replace(e, prev_hash="", hash="") for e in commit.events]
    _, stored, _ = seal_stored(unsealed, commit.events[0].prev_hash)
    assert encode_sealed(KEY, SUBJECT, commit, stored) == data


def test_a_seal_holds_only_for_its_key_subject_and_bytes() -> None:
    from events.chain import Unsealed, encode_sealed, read_sealed
    commit = _a_commit()
    data = encode_sealed(KEY, SUBJECT, commit)
    paid = commit.results[0].maf_pay
    cases = {
        "another subject": (KEY, "ledger.person." + "b" * 32, data),
        "another key": (b"someone-elses-key-0123456789", SUBJECT, data),
        "an edited result": (KEY, SUBJECT, _in_results(data, f'"maf_pay":"{paid}"'.encode(), b'"maf_pay":"99999.00"')),
    }
    assert cases["an edited result"][2] != data
    for why, (key, subject, bytes_) in cases.items():
        with pytest.raises(Unsealed, match="seal does not match"):
            read_sealed(key, subject, bytes_)
    edited = data.replace(b'"year":2022', b'"year":2021', 1)          # the seal covers each event by its hash
    assert edited != data
    with pytest.raises(Unsealed, match="event 0 does not hash to what it claims"):
        read_sealed(KEY, SUBJECT, edited)
    with pytest.raises(Unsealed, match="no seal"):
        read_sealed(KEY, SUBJECT, ev.COMMIT_ENCODER.encode(commit))       # valid hashes, nobody's seal
    with pytest.raises(Unsealed, match="not a ledger commit"):
        read_sealed(KEY, SUBJECT, b'{"nothing": "here"}')


def _in_results(data: bytes, old: bytes, new: bytes) -> bytes:
    at = data.index(b'"results":')
    assert old in data[at:]
    return data[:at] + data[at:].replace(old, new, 1)


def test_a_commit_put_back_from_its_stored_parts_is_the_same_bytes() -> None:
    """`ledger restore` rebuilds a commit from ledger_event payloads and ledger_commit results and seal."""
    from events.chain import encode_sealed, read_sealed
    from services.integrity.restore_sources import _Envelope
    data = encode_sealed(KEY, SUBJECT, _a_commit())
    view = read_sealed(KEY, SUBJECT, data)
    again = msgspec.json.encode(_Envelope(view.commit_id, view.correlation_id,
                                          [msgspec.Raw(bytes(r)) for r in view.events],
                                          msgspec.Raw(bytes(view.results)), view.seal))
    assert again == data


def test_a_sealed_commit_published_again_no_longer_continues_the_chain() -> None:
    from events.chain import links_from, seal_key_id
    commit = _a_commit()
    stored = _stored(commit)
    head = links_from(stored, commit.events[0].prev_hash)
    assert head == commit.events[-1].hash
    assert links_from(stored, head) is None            # the same commit again, after itself
    assert seal_key_id(KEY) == seal_key_id(KEY) != seal_key_id(b"another-key-0123456789")
