"""Stream bytes → events, two ways: whole events (the live projector) or only the fields a rebuild needs.

The commit is read with its events as raw JSON slices (results are skipped:
read models are built from events only), so the audit trail stores exactly
the bytes that were hashed-and-stored, and each event is decoded once.

`LeanDecoder` (rebuilds, ADR 0004): one struct per event type holding only the
fields the selected projections name, derived from the catalogue itself, with
money, dates and times left as the JSON strings they are stored as: PostgreSQL
parses them from COPY text, so no Decimal or datetime is built for a column.
Defaults are the catalogue's, so additive evolution decodes alike. Whatever the
lean structs refuse (a replaced event type, a changed shape) goes through
`events.upcast.decode_event`, the one decoder with upcasters, and is encoded
again in today's shape: an old event projects the same either way.
"""
from __future__ import annotations

import datetime as dt
import functools
import operator
import types
import typing
from collections.abc import Iterable, Mapping
from decimal import Decimal

import msgspec

from events.ledger import Event
from events.upcast import decode_event
from projections.model import Message

PERSON_PREFIX = "ledger.person."
EVENT_TYPES: tuple[type, ...] = typing.get_args(Event)
_AS_TEXT = (Decimal, dt.date, dt.datetime)      # sent to PostgreSQL as the stored string


class _RawCommit(msgspec.Struct):
    events: list[msgspec.Raw]


_COMMIT = msgspec.json.Decoder(_RawCommit)
_ENCODE = msgspec.json.Encoder().encode


def person_key_of(subject: str) -> str | None:
    return subject[len(PERSON_PREFIX):] if subject.startswith(PERSON_PREFIX) else None


def raw_events(data: bytes) -> list[msgspec.Raw]:
    """Each event of a stored commit as a slice of `data` (results skipped)."""
    return _COMMIT.decode(data).events


def stored_events(data: bytes) -> list[bytes]:
    """Each event of a stored commit exactly as written (results skipped)."""
    return [bytes(r) for r in raw_events(data)]


def decode_message(seq: int, subject: str, data: bytes) -> Message:
    raws = stored_events(data)
    return Message(seq, subject, person_key_of(subject), [decode_event(r) for r in raws], raws)


# --- lean decoding ---------------------------------------------------------------------

Needs = Mapping[type, Iterable[str]]     # event class (or a base such as SettlementFacts) → field names


def _lean_type(t: typing.Any) -> typing.Any:
    if t in _AS_TEXT:
        return str
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
    wanted = frozenset().union(*(needs.get(base, ()) for base in cls.__mro__))
    fields = []
    for f in msgspec.structs.fields(cls):
        if f.name in wanted:
            default = msgspec.NODEFAULT if f.required else msgspec.field(default=_lean_default(f.default))
            fields.append((f.name, _lean_type(f.type), default))
    tag = cls.__struct_config__.tag
    return msgspec.defstruct(f"Lean{cls.__name__}", fields, tag=tag, tag_field="type", kw_only=True, gc=False,
                             frozen=True, module=__name__, namespace={"TYPE": tag, "FULL": cls})


class LeanDecoder:
    """Decodes stored events into the lean structs of `needs`; `by_full[cls]` is the struct of `cls`."""

    def __init__(self, needs: Needs):
        self.by_full = {cls: lean_struct(cls, needs) for cls in EVENT_TYPES}
        union = functools.reduce(operator.or_, self.by_full.values())
        self._event = msgspec.json.Decoder(union)
        commit = msgspec.defstruct("LeanCommit", [("events", list[union])], module=__name__)
        self._commit = msgspec.json.Decoder(commit)

    def event(self, raw: bytes | msgspec.Raw) -> typing.Any:
        try:
            return self._event.decode(raw)
        except msgspec.ValidationError:        # an old shape: upcast like every reader, then cut down
            return self._event.decode(_ENCODE(decode_event(raw)))

    def each(self, slices: list[msgspec.Raw]) -> list:
        """`event` of every slice of one commit (the fast path without a call per event)."""
        decode = self._event.decode
        try:
            return [decode(r) for r in slices]
        except msgspec.ValidationError:
            return [self.event(r) for r in slices]

    def events(self, data: bytes) -> list:
        """Every event of a stored commit, when its raw bytes are not wanted (one pass over the JSON)."""
        try:
            return self._commit.decode(data).events
        except msgspec.ValidationError:
            return [self.event(r) for r in raw_events(data)]
