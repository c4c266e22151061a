"""NATS users of the embedded server: passwords generated once per data dir, the config from the one accounts file.

Why: NATS must be closed in the embedded default too (design §5, ADR 0009),
with the same accounts and permissions as compose, k8s and the R3 cluster.
``nats-accounts.conf`` beside this module is ``deploy/nats/accounts.conf``
(a symlink in the repository, a copy in a built wheel). Its passwords are
``$NATS_<USER>_PASSWORD`` variables; here they are defined at the top of the
generated config (NATS includes cannot see a parent's variables, so the text
is written in, not included) as bcrypt hashes, so the config and the server
process hold no usable password. The passwords themselves are generated into
``<data_dir>/nats-users.json`` (mode 0600) on first use and kept.

The generated passwords are 256 random bits: bcrypt's cost defends guessable
passwords and adds nothing against those, so a low cost keeps every connect
(tests and CLI commands connect often) at a few milliseconds.
"""
from __future__ import annotations

import json
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import msgspec

from services.runtime.secrets import _write_once

__all__ = ["ACCOUNTS_CONF", "NATS_USERS", "USERS_FILE", "NatsUser", "accounts_config", "nats_users",
           "password_variable", "read_nats_users", "redact_url", "url_for"]

ACCOUNTS_CONF = Path(__file__).with_name("nats-accounts.conf")
USERS_FILE = "nats-users.json"
NATS_USERS: tuple[str, ...] = ("platform", "ledger", "admin", "sys")
BCRYPT_COST = 6   # ~4 ms a connect; see the module docstring


class NatsUser(msgspec.Struct, frozen=True):
    user: str
    password: str


def password_variable(name: str) -> str:
    """The accounts file's variable for ``name``'s password, e.g. ``NATS_LEDGER_PASSWORD``."""
    return f"NATS_{name.upper()}_PASSWORD"


def _new_users() -> str:
    users = {name: {"user": name, "password": secrets.token_urlsafe(32)} for name in NATS_USERS}
    return json.dumps(users, indent=2) + "\n"


def _parse(path: Path, text: str) -> dict[str, NatsUser]:
    try:
        users = msgspec.json.decode(text, type=dict[str, NatsUser])
    except msgspec.DecodeError as exc:
        raise ValueError(f"{path} is not a JSON object of name -> {{user, password}} ({exc}); "
                         "fix or delete it") from None
    missing = [name for name in NATS_USERS if name not in users]
    if missing:
        raise ValueError(f"{path} lacks the NATS user(s) {', '.join(missing)}; fix or delete it")
    return users


def nats_users(data_dir: Path) -> dict[str, NatsUser]:
    """The embedded server's users from ``<data_dir>/nats-users.json``, generated on first use."""
    path = Path(data_dir) / USERS_FILE
    return _parse(path, _write_once(path, _new_users))


def read_nats_users(data_dir: Path) -> dict[str, NatsUser] | None:
    """The users file if a `ledger run` made one here, else None (never generates)."""
    path = Path(data_dir) / USERS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return _parse(path, text)


def accounts_config(users: dict[str, NatsUser]) -> str:
    """The accounts file's text, preceded by its password variables (bcrypt hashes)."""
    import bcrypt

    lines = ["# Password variables for the accounts below: bcrypt hashes of nats-users.json."]
    for name in NATS_USERS:
        digest = bcrypt.hashpw(users[name].password.encode(), bcrypt.gensalt(BCRYPT_COST, prefix=b"2a"))
        lines.append(f"{password_variable(name)}: {json.dumps(digest.decode())}")
    lines += ["", f"# --- {ACCOUNTS_CONF.name} (deploy/nats/accounts.conf) ---",
              ACCOUNTS_CONF.read_text(encoding="utf-8")]
    return "\n".join(lines)


def url_for(address: str, user: NatsUser) -> str:
    """``nats://user:password@host:port`` for ``address`` (``nats://host:port``)."""
    parts = urlsplit(address)
    return urlunsplit(parts._replace(netloc=f"{user.user}:{user.password}@{parts.hostname}:{parts.port}"))


def redact_url(url: str) -> str:
    """``url`` (one or several, comma-separated) without user and password: for logs and the console."""
    out = []
    for part in url.split(","):
        parts = urlsplit(part.strip())
        host = parts.netloc.rpartition("@")[2]
        out.append(urlunsplit(parts._replace(netloc=host)))
    return ",".join(out)
