"""Deployment secrets: the person-key HMAC secret, the seal key and the role bearer tokens.

Why: subjects, stream listings and logs must never show a ``psn_no``, so the
ledger names a person's subject by a keyed hash of it; every commit is sealed
with a key of the ledger's own, so a message someone else published is told
apart (ADR 0010); and the API needs one bearer token per role. Both come from the environment in production. With
nothing configured, ``ledger run`` generates them once into the data
directory (mode 0600) and reuses them, so a restart keeps the same person
subjects and the same tokens.

Files are created atomically and never overwritten (write a temp file, then
``os.link`` it into place): two processes starting together on one data
directory end up with the same value, and no reader sees half a file.

Changing the person-key secret after events were written orphans every
existing person subject, and changing the seal key makes every stored commit
look forged: treat both like the data itself (back them up).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from services.runtime.settings import ROLES, Settings

__all__ = ["PERSON_KEY_HEX_LEN", "keyed_hash", "person_key", "person_key_secret", "role_tokens", "seal_secret"]

PERSON_KEY_HEX_LEN = 32  # 128 bits: no collisions in practice, short subject tokens
PERSON_KEY_FILE = "person_key.secret"
SEAL_KEY_FILE = "seal.secret"


def _write_once(path: Path, make: Callable[[], str]) -> str:
    """Return the file's text, creating it (0600) with ``make()`` if it does not exist."""
    if path.exists():
        return path.read_text(encoding="utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(make())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails if someone else won the race: then use theirs
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text(encoding="utf-8")


def _key(given: str | None, path: Path, variable: str) -> bytes:
    """`given` (from the environment), else the key in `path`, generated once (``secrets.token_hex(32)``);
    either way the UTF-8 bytes of the text are the key."""
    if given is not None:
        return given.encode("utf-8")
    text = _write_once(path, lambda: secrets.token_hex(32) + "\n").strip()
    if not text:
        raise ValueError(f"{path} is empty; restore it from backup or set {variable}")
    return text.encode("utf-8")


def person_key_secret(settings: Settings) -> bytes:
    """The HMAC secret: LEDGER_PERSON_KEY_SECRET, else ``<data_dir>/person_key.secret``."""
    return _key(settings.person_key_secret, settings.data_dir / PERSON_KEY_FILE, "LEDGER_PERSON_KEY_SECRET")


def seal_secret(settings: Settings) -> bytes:
    """The seal key: LEDGER_SEAL_SECRET, else ``<data_dir>/seal.secret`` (generated once, like the person key).

    Every process that writes or verifies commits needs the same one: adjudicators, the projector,
    `ledger verify`."""
    return _key(settings.seal_secret, settings.data_dir / SEAL_KEY_FILE, "LEDGER_SEAL_SECRET")


def person_key(secret: bytes, psn_no: str) -> str:
    """HMAC-SHA256 of ``psn_no`` under ``secret``, first 32 hex chars (a valid subject token)."""
    if not psn_no:
        raise ValueError("psn_no must not be empty")
    return keyed_hash(secret, psn_no)


def keyed_hash(secret: bytes, text: str) -> str:
    """HMAC-SHA256 of ``text`` under ``secret``, first 32 hex chars: names a subject without showing it."""
    return hmac.new(secret, text.encode("utf-8"), hashlib.sha256).hexdigest()[:PERSON_KEY_HEX_LEN]


def _new_tokens() -> str:
    return json.dumps({role: secrets.token_urlsafe(32) for role in ROLES}, indent=2) + "\n"


def role_tokens(settings: Settings) -> dict[str, str]:
    """Bearer token per role: LEDGER_TOKEN_<ROLE>, else from the tokens file (generated once).

    The file is read or generated only if some role has no token in the
    environment; it always holds all three roles.
    """
    tokens = settings.explicit_tokens
    if len(tokens) == len(ROLES):
        return {role: tokens[role] for role in ROLES}
    path = settings.tokens_path
    try:
        stored = json.loads(_write_once(path, _new_tokens))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); fix or delete it") from None
    if not isinstance(stored, dict):
        raise ValueError(f"{path} must hold a JSON object of role -> token; fix or delete it")
    missing = [r for r in ROLES if r not in tokens and not isinstance(stored.get(r), str)]
    if missing:
        raise ValueError(f"{path} lacks a token for {', '.join(missing)}; fix or delete it")
    return {role: tokens.get(role, stored[role]) for role in ROLES}
