"""Stream bytes → `Message`, two ways: whole events (the live projector) or only the fields a rebuild needs.

The commit is read with its events and results as raw JSON slices, so the audit trail stores
exactly the bytes that were hashed, sealed and stored, each event is decoded once, and `ledger
restore` can put the commit back as it was. A message the ledger did not seal for its subject
raises `events.chain.Unsealed` (ADR 0010). Both ways go through `sealed_message`: the seal and
each event's hash are checked alike, whichever structs the events are decoded into.

`LeanDecoder` (rebuilds, ADR 0004): one struct per event type holding only the
fields the selected projections name (and `hash`, `prev_hash`: the seal and chain checks), derived
from the catalogue itself, with money, dates and times left as the JSON strings they
are stored as: PostgreSQL parses them from COPY text, so no Decimal or datetime is
built for a column. Defaults are the catalogue's, so additive evolution decodes alike.
Whatever the lean structs refuse (a replaced event type, a changed shape) is read as plain
JSON, upcast by `events.upcast.upcast_event` (the one set of upcasters) and converted into
the lean struct, its strings left as they are; only what that refuses is decoded whole
(`decode_event`) and encoded again in today's shape. Every event whose type has an upcaster
of its own tag is also read whole first. An old event projects the same either way.
A field that is a struct (the facts' embedded `settlement`) is named `outer.inner`.
"""
from __future__ import annotations

import datetime as dt
import functools
import operator
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal

import msgspec

from events.chain import check_sealed, read_view
from events.ledger import Event
from events.subjects import PERSON_PREFIX
from events.upcast import UPCASTERS, decode_event, upcast_event
from projections.model import Message

__all__ = ["PERSON_PREFIX", "LeanDecoder", "decode_message", "merge_needs", "person_key_of", "sealed_message"]
EVENT_TYPES: tuple[type, ...] = typing.get_args(Event)
_AS_TEXT = (Decimal, dt.date, dt.datetime)      # sent to PostgreSQL as the stored string
_ENCODE = msgspec.json.Encoder().encode
_ANY = msgspec.json.Decoder().decode
_ALWAYS = ("hash", "prev_hash")       # every lean event: the seal check and the chain screen (heads.py) read them


def person_key_of(subject: str) -> str | None:
    return subject[len(PERSON_PREFIX):] if subject.startswith(PERSON_PREFIX) else None


def sealed_message(seq: int, subject: str, data: bytes, seal_key: bytes,
                   decode_events: Callable[[list[bytes]], list]) -> Message:
    """The commit in `data` with its events as `decode_events` gives them (each must carry `hash`);
    `Unsealed` unless the ledger sealed it for `subject` and each event's bytes hash to its claim."""
    view = read_view(data)
    raws = [bytes(r) for r in view.events]
    events = decode_events(raws)
    check_sealed(seal_key, subject, view, raws, [e.hash for e in events])     # the hashes the events claim
    return Message(seq, subject, person_key_of(subject), events, raws, view.commit_id, view.correlation_id,
                   bytes(view.results), view.seal, None, len(data))


def _whole(raws: list[bytes]) -> list:
    return [decode_event(r) for r in raws]


def decode_message(seq: int, subject: str, data: bytes, seal_key: bytes) -> Message:
    return sealed_message(seq, subject, data, seal_key, _whole)


# --- lean decoding ---------------------------------------------------------------------

Needs = Mapping[type, Iterable[str]]     # event class (or a base such as SettlementFacts) → field names


def _lean_type(t: typing.Any) -> typing.Any:
    if t in _AS_TEXT:
        return str
    if typing.get_origin(t) is typing.Annotated:     # bounds were checked when the message came in
        return _lean_type(typing.get_args(t)[0])
    if isinstance(t, types.UnionType):
        return functools.reduce(operator.or_, (_lean_type(a) for a in typing.get_args(t)))
    return t


def _lean_default(value: typing.Any) -> typing.Any:
    return str(value) if isinstance(value, Decimal) else value.isoformat() if isinstance(value, _AS_TEXT) else value


def merge_needs(*needs: Needs) -> dict[type, frozenset[str]]:
    out: dict[type, frozenset[str]] = {}
    for need in needs:
        for cls, names in need.items():
            out[cls] = out.get(cls, frozenset()) | frozenset(names)
    return out


def lean_struct(cls: type, needs: Needs) -> type:
    """`cls` cut down to the fields named for it (or for one of its bases); `TYPE` is its tag."""
    wanted = frozenset().union(*(needs.get(base, ()) for base in cls.__mro__), _ALWAYS)
    tag = cls.__struct_config__.tag
    return msgspec.defstruct(f"Lean{cls.__name__}", _lean_fields(cls, wanted), tag=tag, tag_field="type",
                             kw_only=True, gc=False, frozen=True, module=__name__, namespace={"TYPE": tag, "FULL": cls})


def _lean_fields(cls: type, wanted: frozenset[str]) -> list[tuple]:
    """The fields of `cls` in `wanted`; a name `outer.inner` keeps a struct field as a lean struct of its own
    with only the inner names (an embedded `Settlement` with the few fields a fold reads)."""
    inner: dict[str, set[str]] = {}
    for name in wanted:
        outer, dot, rest = name.partition(".")
        if dot:
            inner.setdefault(outer, set()).add(rest)
    fields = []
    for f in msgspec.structs.fields(cls):
        if f.name in inner:
            nested = msgspec.defstruct(f"Lean{f.type.__name__}", _lean_fields(f.type, frozenset(inner[f.name])),
                                       kw_only=True, gc=False, frozen=True, module=__name__)
            fields.append((f.name, nested))
        elif f.name in wanted:
            default = msgspec.NODEFAULT if f.required else msgspec.field(default=_lean_default(f.default))
            fields.append((f.name, _lean_type(f.type), default))
    return fields


class LeanDecoder:
    """Decodes stored events into the lean structs of `needs`; `by_full[cls]` is the struct of `cls`."""

    def __init__(self, needs: Needs):
        self.by_full = {cls: lean_struct(cls, needs) for cls in EVENT_TYPES}
        self._by_tag = {lean.TYPE: lean for lean in self.by_full.values()}
        self._event = msgspec.json.Decoder(functools.reduce(operator.or_, self.by_full.values()))
        # A type whose own tag has an upcaster is read whole first, as `decode_event` would (a lean
        # struct could accept an old shape the whole one refuses, and skip the upcaster).
        self._upcast = frozenset(lean for cls, lean in self.by_full.items() if lean.TYPE in UPCASTERS)

    def event(self, raw: bytes | msgspec.Raw) -> typing.Any:
        try:
            lean = self._event.decode(raw)
            if type(lean) not in self._upcast:
                return lean
        except msgspec.ValidationError:        # an old shape: upcast like every reader, then cut down
            pass
        obj = upcast_event(_ANY(raw))          # as JSON values: money, dates and times stay the stored strings
        lean = self._by_tag.get(obj.get("type")) if isinstance(obj, dict) else None
        if lean is not None:                   # (into its own struct: converting into the union costs ~10x)
            try:
                return msgspec.convert(obj, lean)
            except msgspec.ValidationError:    # what only the whole types accept (`decode_event` is lax)
                pass
        return self._event.decode(_ENCODE(decode_event(raw)))

    def each(self, slices: list[bytes]) -> list:
        """`event` of every slice of one commit (the fast path without a call per event)."""
        if not self._upcast:
            decode = self._event.decode
            try:
                return [decode(r) for r in slices]
            except msgspec.ValidationError:
                pass
        return [self.event(r) for r in slices]

    def message(self, seq: int, subject: str, data: bytes, seal_key: bytes) -> Message:
        """`decode_message` with lean events: the same seal check, the same `Unsealed`."""
        return sealed_message(seq, subject, data, seal_key, self.each)
