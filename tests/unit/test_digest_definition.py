"""The digest's definition (projections/digest.py, ADR 0011) with figures worked by hand, and its signature."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import stat
from pathlib import Path

import msgspec
import pytest

from projections.digest import SubjectHead, StreamHeads, differences, head_lines, heads_digest, ref_link
from projections.verify import Break
from services.audit.digest import DECODER, Digest, signed_payload
from services.runtime.settings import Settings
from services.runtime.signing import public_key_from, signing_key, verify

A = "a" * 64
B = "b" * 64
PERSON = "ledger.person.0123456789abcdef0123456789abcdef"


def test_the_digest_is_sha256_over_sorted_lines() -> None:
    heads = [SubjectHead("ledger.ref.medins", 1, A), SubjectHead(PERSON, 7, B)]
    text = f"{PERSON} 7 {B}\nledger.ref.medins 1 {A}\n"          # "ledger.p" < "ledger.r"
    assert head_lines(heads) == text.encode()
    assert heads_digest(heads) == hashlib.sha256(text.encode()).hexdigest()
    assert heads_digest(reversed(heads)) == heads_digest(heads)       # order given does not matter
    assert heads_digest([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"   # sha256("")
    assert heads_digest([SubjectHead(PERSON, 8, B), heads[0]]) != heads_digest(heads)   # the seq counts too


def test_reference_subjects_chain_their_commit_bytes() -> None:
    first = ref_link("", b'{"commit_id":"c1"}')
    assert first == hashlib.sha256(b'{"commit_id":"c1"}').hexdigest()
    second = ref_link(first, b'{"commit_id":"c2"}')
    assert second == hashlib.sha256(first.encode("ascii") + b'{"commit_id":"c2"}').hexdigest()
    assert ref_link(ref_link("", b'{"commit_id":"c2"}'), b'{"commit_id":"c1"}') != second   # order counts


def _found(heads: list[SubjectHead], breaks: list[Break] = (), upto: int = 9) -> StreamHeads:
    return StreamHeads("LEDGER", None, upto, upto, upto, heads, list(breaks))


def test_differences_name_each_subject_that_changed() -> None:
    kept = [SubjectHead(PERSON, 7, B), SubjectHead("ledger.person.ff", 3, A), SubjectHead("ledger.ref.medins", 1, A)]
    assert differences(kept, _found(kept)) == []
    now = [SubjectHead(PERSON, 7, A), SubjectHead("ledger.person.ee", 4, A), SubjectHead("ledger.ref.medins", 1, A)]
    found = differences(kept, _found(now))
    assert [(d.subject, d.kind) for d in found] == [("ledger.person.0123456789abcdef0123456789abcdef", "changed"),
                                                   ("ledger.person.ee", "added"), ("ledger.person.ff", "missing")]
    assert found[0].person_key == "0123456789abcdef0123456789abcdef"
    assert (found[0].digest_head, found[0].found_head, found[2].found_seq) == (B, A, None)
    brk = Break(PERSON, "0123456789abcdef0123456789abcdef", 5, 0, "e1", A, B, True, "previous hash does not match")
    broken = differences(kept, _found(kept, [brk]))
    assert [(d.kind, d.detail) for d in broken] == [("chain_break", "previous hash does not match at sequence 5 "
                                                                    "(event e1)")]


def _digest() -> Digest:
    created = dt.datetime(2022, 1, 1, 8, 0, 0, 123456, tzinfo=dt.timezone.utc)
    heads = [SubjectHead(PERSON, 7, B)]
    return Digest(stream="LEDGER", stream_created=created, upto=7, subjects=1, digest=heads_digest(heads),
                  key_id="k" * 32, issued_at=created + dt.timedelta(days=1), heads=heads)


def test_the_signed_text() -> None:
    d = _digest()
    assert signed_payload(d) == (
        "claims-ledger digest v1\nstream=LEDGER\nstream_created=2022-01-01T08:00:00.123456Z\nupto=7\nsubjects=1\n"
        f"algorithm=sha256-heads/ed25519\ndigest={d.digest}\nkey_id={'k' * 32}\n"
        "issued_at=2022-01-02T08:00:00.123456Z\n").encode()
    again = DECODER.decode(msgspec.json.encode(d))                  # the file read back signs the same text
    assert signed_payload(again) == signed_payload(d)


def test_the_key_is_generated_once_0600_and_signs(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    key = signing_key(settings)
    path = tmp_path / "data" / "digest_signing_key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing_key(settings).key_id == key.key_id                 # reused, not regenerated
    d = _digest()
    d.key_id = key.key_id
    d.signature = key.sign(signed_payload(d))
    view = key.view()
    for kept in (view.pem, view.public_key, msgspec.json.encode(view)):   # however the supervisor kept it
        assert verify(public_key_from(kept), signed_payload(d), d.signature)
    assert not verify(key.public, signed_payload(msgspec.structs.replace(d, upto=8)), d.signature)
    flipped = bytearray(base64.b64decode(d.signature))
    flipped[0] ^= 1
    assert not verify(key.public, signed_payload(d), base64.b64encode(bytes(flipped)).decode())
    assert not verify(key.public, signed_payload(d), "not base64!")
    other = signing_key(Settings(data_dir=tmp_path / "other"))
    assert other.key_id != key.key_id and not verify(other.public, signed_payload(d), d.signature)
    with pytest.raises(ValueError):
        public_key_from("definitely not a key")
