"""Tamper evidence: each event hashes its canonical bytes and names its predecessor's hash; each
commit carries a seal, a keyed MAC only the ledger can make (ADR 0010).

The hash chain alone is unkeyed: anyone who can publish can write a commit whose hashes hold. The
seal is HMAC-SHA256 under the ledger's seal key over the subject, the commit id, each event's bytes
as stored and the results' bytes as stored, so a commit moved to another subject, edited, or made
up is told apart from one the ledger wrote. One MAC per commit, not a signature per event: it is on
the decision path.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence

import msgspec

from events.ledger import COMMIT_ENCODER, Commit, LedgerEvent

GENESIS = ""
_ENCODER = msgspec.json.Encoder()


def event_hash(event: LedgerEvent) -> str:
    """SHA-256 over the event's canonical JSON with its own `hash` blanked."""
    return hashlib.sha256(_ENCODER.encode(msgspec.structs.replace(event, hash=""))).hexdigest()


def seal(events: Iterable[LedgerEvent], prev_hash: str) -> tuple[list[LedgerEvent], str]:
    """Chain `events` after `prev_hash`; returns the sealed events and the new head."""
    sealed, _, head = seal_stored(events, prev_hash)
    return sealed, head


def seal_stored(events: Iterable[LedgerEvent], prev_hash: str) -> tuple[list[LedgerEvent], list[msgspec.Raw], str]:
    """`seal`, plus each sealed event's JSON as it will be stored (to encode a commit around, without
    encoding its events again): the hashed bytes with the own hash filled in, which is also what
    `stored_hash_ok` checks."""
    sealed, stored = [], []
    for event in events:
        event = msgspec.structs.replace(event, prev_hash=prev_hash, hash="")
        canonical = _ENCODER.encode(event)
        prev_hash = hashlib.sha256(canonical).hexdigest()
        sealed.append(msgspec.structs.replace(event, hash=prev_hash))
        stored.append(msgspec.Raw(canonical.replace(b'"hash":""', b'"hash":"' + prev_hash.encode() + b'"', 1)))
    return sealed, stored, prev_hash


class ChainBreak(msgspec.Struct, frozen=True):
    index: int
    event_id: str
    expected_prev: str
    found_prev: str
    hash_ok: bool


class _Link(msgspec.Struct):
    """What the chain needs of any event, whatever its type or version."""
    event_id: str = ""
    prev_hash: str = ""
    hash: str = ""


_LINK = msgspec.json.Decoder(_Link)


def stored_hash_ok(stored: bytes, claimed: str) -> bool:
    """Whether an event's JSON as written hashes to `claimed` once its own hash is blanked.

    The bytes written are checked, not a re-encoding of the decoded event: an event written
    before a field was added re-encodes with that field's default and would no longer match.
    (Only the own-hash key can match: in ``"prev_hash":`` a ``_``, not a quote, precedes ``hash``.)
    """
    own = b'"hash":"' + claimed.encode() + b'"'
    blanked = stored.replace(own, b'"hash":""', 1)
    return blanked != stored and hashlib.sha256(blanked).hexdigest() == claimed


def head_of(stored: bytes) -> str:
    """The hash an event as stored claims: the head of its chain once it is checked."""
    return _LINK.decode(stored).hash


def first_break(stored: Iterable[bytes], prev_hash: str = GENESIS) -> ChainBreak | None:
    """Walk one person's chain over its events as stored; the first whose link or hash does not hold."""
    for index, raw in enumerate(stored):
        link = _LINK.decode(raw)
        hash_ok = stored_hash_ok(raw, link.hash)
        if link.prev_hash != prev_hash or not hash_ok:
            return ChainBreak(index, link.event_id, prev_hash, link.prev_hash, hash_ok)
        prev_hash = link.hash
    return None


# --- seals ------------------------------------------------------------------------------

_SEAL_DOMAIN = b"claims-ledger commit seal v1\0"


def commit_seal(key: bytes, subject: str, commit_id: str, event_hashes: Sequence[str], results: bytes) -> str:
    """The seal of a commit: HMAC-SHA256 over its subject, id, each event's hash and the results' bytes.

    Each event's hash already covers that event's bytes (`seal_stored` made it), so the MAC runs over
    ~1 kB of hashes and results rather than the whole commit: a few microseconds on the decision
    path. A reader must therefore check the events' hashes too, which `read_sealed` does."""
    mac = hmac.new(key, _SEAL_DOMAIN + subject.encode() + b"\0" + commit_id.encode() + b"\0", hashlib.sha256)
    for claimed in event_hashes:
        mac.update(claimed.encode() + b"\0")
    mac.update(results)
    return mac.hexdigest()


def seal_key_id(key: bytes) -> str:
    """A name for the key that gives nothing of it away: processes compare it before trusting their own."""
    return hmac.new(key, b"claims-ledger seal key id", hashlib.sha256).hexdigest()[:16]


def encode_sealed(key: bytes, subject: str, commit: Commit, stored: Sequence[msgspec.Raw] | None = None) -> bytes:
    """The commit's bytes for `subject`, sealed: what every append path publishes.

    `stored` are its events as `seal_stored` encoded them, whose hashes `commit.events` carry (the
    stores' path: nothing is hashed twice). Without it the events are sealed here, from the first
    one's predecessor: an already sealed chain comes out the same; reference events not yet hashed
    are chained within the commit, as the JetStream store writes them."""
    events = commit.events
    if stored is None:
        events, stored, _ = seal_stored(events, events[0].prev_hash if events else GENESIS)
    results = msgspec.Raw(_ENCODER.encode(commit.results))
    seal_ = commit_seal(key, subject, commit.commit_id, [e.hash for e in events], results)
    return COMMIT_ENCODER.encode(msgspec.structs.replace(commit, events=list(stored), results=results, seal=seal_))


class SealedView(msgspec.Struct):
    """A stored commit as its seal sees it: the events and results as raw slices of the message."""
    commit_id: str
    events: list[msgspec.Raw]
    correlation_id: str = ""
    results: msgspec.Raw = msgspec.Raw(b"[]")
    seal: str = ""


_VIEW = msgspec.json.Decoder(SealedView)


class Unsealed(ValueError):
    """A message the ledger did not write: not a commit, no seal, a seal that does not match, or an event
    whose bytes do not hash to what it claims."""


def read_view(data: bytes) -> SealedView:
    """The commit's parts as stored, nothing checked yet; `Unsealed` if it is not a commit at all."""
    try:
        return _VIEW.decode(data)
    except (msgspec.DecodeError, ValueError) as exc:
        raise Unsealed(f"not a ledger commit: {exc}") from None


def check_sealed(key: bytes, subject: str, view: SealedView, stored: Sequence[bytes], claims: Sequence[str]) -> None:
    """Raise `Unsealed` unless the seal holds for `subject` and each event's bytes (`stored`) hash to its
    claimed hash (`claims`, as the events say: a reader that decodes them anyway passes theirs)."""
    if not view.seal:
        raise Unsealed("no seal")
    if not hmac.compare_digest(commit_seal(key, subject, view.commit_id, claims, view.results), view.seal):
        raise Unsealed("seal does not match")
    for index, (raw, claimed) in enumerate(zip(stored, claims)):
        if not stored_hash_ok(raw, claimed):
            raise Unsealed(f"event {index} does not hash to what it claims")


def read_sealed(key: bytes, subject: str, data: bytes) -> SealedView:
    """The commit in `data` if the ledger sealed it for `subject`, its events' bytes as they were hashed;
    else `Unsealed` with the reason."""
    view = read_view(data)
    stored = [bytes(raw) for raw in view.events]
    try:
        claims = [_LINK.decode(raw).hash for raw in stored]
    except (msgspec.DecodeError, ValueError) as exc:
        raise Unsealed(f"not a ledger commit: {exc}") from None
    check_sealed(key, subject, view, stored, claims)
    return view


def links_from(stored: Iterable[bytes], head: str) -> str | None:
    """The new head if each event names the one before it (from `head`), else None; hashes not recomputed
    (`read_sealed` checked them).

    A sealed commit published again later on its own subject still has a valid seal, but no longer
    continues the chain."""
    for raw in stored:
        link = _LINK.decode(raw)
        if link.prev_hash != head:
            return None
        head = link.hash
    return head


def first_link_break(stored: Iterable[bytes], prev_hash: str = GENESIS) -> ChainBreak | None:
    """`first_break` for events whose hashes `read_sealed` has already checked: links only."""
    for index, raw in enumerate(stored):
        link = _LINK.decode(raw)
        if link.prev_hash != prev_hash:
            return ChainBreak(index, link.event_id, prev_hash, link.prev_hash, True)
        prev_hash = link.hash
    return None
