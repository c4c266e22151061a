"""What the gate refuses before any parsing, and how much of a refused message is kept (ADR 0003 "Hostile input").

A platform message is a flat JSON object of a few hundred bytes. Anything far
beyond that is refused here with a sentence, before a JSON parser sees it:

* more than `MAX_MESSAGE_BYTES` — a dead letter keeps that many bytes plus the
  size and SHA-256 of the whole, so a refused message never becomes a commit
  too big for NATS ``max_payload`` nor a megabyte row;
* not UTF-8, or led by a byte order mark (RFC 8259 §8.1) — msgspec checks
  UTF-8 only in the strings it keeps, so a bad byte in an ignored field would
  otherwise pass;
* nested deeper than `MAX_DEPTH` — msgspec recurses per level and raises
  `RecursionError` at the interpreter's recursion limit (about 1,000 levels
  less the caller's stack, so where depends on the caller); a fixed limit
  answers the same wherever the bytes come from.

Reason sentences are bounded too (`bounded`): they may quote input, never
megabytes of it.
"""
from __future__ import annotations

import hashlib
import re

from events.results import Reason

MAX_MESSAGE_BYTES = 64 * 1024
MAX_DEPTH = 32                 # messages are depth 1; room for nested fields a later schema may add
MAX_REASON_CHARS = 500
MAX_TEXT_CHARS = 256           # every text field of an inbound message (events/messages.py `Text`)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)   # linear: an unterminated string runs to the end
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def unreadable(raw: bytes) -> str | None:
    """Why `raw` is refused unparsed, or None when a JSON parser may read it."""
    if len(raw) > MAX_MESSAGE_BYTES:
        return too_large(len(raw), hashlib.sha256(raw).hexdigest())
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"not valid UTF-8: byte {exc.start} ({raw[exc.start]:#04x}) {exc.reason}"
        if raw.startswith(b"\xef\xbb\xbf"):
            return "starts with a byte order mark (U+FEFF); a message is JSON text without one (RFC 8259 §8.1)"
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _too_deep(raw):
        return f"nested deeper than {MAX_DEPTH} levels; a message is one flat JSON object"
    return None


def _too_deep(raw: bytes) -> bool:
    """Whether brackets outside strings nest deeper than MAX_DEPTH (a parser reading `raw` would go that deep)."""
    depth = 0
    for b in _STRING.sub(b"", raw).translate(None, _NOT_BRACKET):
        if b in b"[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth -= 1
    return False


def too_large(size: int, sha256: str) -> str:
    return (f"{size} bytes is more than the {MAX_MESSAGE_BYTES} a message may have; the dead letter keeps the first "
            f"{MAX_MESSAGE_BYTES} bytes, the whole has SHA-256 {sha256}")


def kept(raw: bytes) -> bytes:
    """What a dead letter keeps of a message (its reason, from `too_large`, says so when it is cut)."""
    return raw if len(raw) <= MAX_MESSAGE_BYTES else raw[:MAX_MESSAGE_BYTES]


def brief(text: str, limit: int = 40) -> str:
    """`text` short enough to quote in a reason."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def bounded(reason: Reason) -> Reason:
    """The reason with a sentence of at most MAX_REASON_CHARS characters and no NUL (PostgreSQL text refuses it)."""
    text = reason.message.replace("\x00", "\\u0000")
    if len(text) > MAX_REASON_CHARS:
        text = text[:MAX_REASON_CHARS - 1] + "…"
    return reason if text == reason.message else Reason(reason.code, text)


class Body:
    """A message read in pieces (an HTTP body, a `ledger replay` line) in bounded memory.

    Keeps the first MAX_MESSAGE_BYTES bytes and, past them, only the size and
    the SHA-256 of the whole: what `unreadable` would say of the same bytes.
    """

    def __init__(self) -> None:
        self.head = bytearray()
        self.size = 0
        self._sha: hashlib._Hash | None = None

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._sha is None:
            room = MAX_MESSAGE_BYTES - len(self.head)
            if len(chunk) <= room:
                self.head += chunk
                return
            self.head += chunk[:room]
            self._sha = hashlib.sha256(self.head)
            chunk = chunk[room:]
        self._sha.update(chunk)

    def copy(self) -> Body:
        other = Body()
        other.head, other.size = bytearray(self.head), self.size
        other._sha = self._sha.copy() if self._sha is not None else None
        return other

    @property
    def whole(self) -> bytes | None:
        """All the bytes, when they are few enough to be a message."""
        return bytes(self.head) if self._sha is None else None

    def refusal(self) -> str:
        assert self._sha is not None, "only a body over MAX_MESSAGE_BYTES is refused unread"
        return too_large(self.size, self._sha.hexdigest())
