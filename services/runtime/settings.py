"""Runtime settings, read once from the environment.

Why a separate module: every process (`ledger run`, the API, tests) needs the
same answer to "where are NATS and PostgreSQL, where is my data, which secrets
apply", and a bad value must stop the process at start with the variable's
name rather than fail later somewhere deep in a handler.

Nothing has a credential as default: secrets and tokens left unset are
generated into the data directory by ``services.runtime.secrets``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

__all__ = ["ROLES", "Settings", "load_settings"]

ROLES: tuple[str, ...] = ("platform", "supervisor", "admin")

_NATS_SCHEMES = ("nats://", "tls://", "ws://", "wss://")
_PG_SCHEMES = ("postgresql://", "postgres://")
_MIN_SECRET_LEN = 16


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Where the ledger's servers and data are; ``None`` means "embedded/generated"."""

    nats_url: str | None = None          # the services' NATS user (``ledger``), e.g. nats://ledger:<password>@host:4222
    nats_admin_url: str | None = None    # LEDGER_NATS_ADMIN_URL: a NATS admin; `ledger run` then sets up the streams
    nats_nkey_seed: Path | None = None   # LEDGER_NATS_NKEY_SEED: nkey seed file of the services' NATS user
    database_url: str | None = None
    data_dir: Path = Path(".ledger")
    nats_port: int = 4222
    http_port: int = 8000
    http_host: str = "127.0.0.1"
    person_key_secret: str | None = None
    seal_secret: str | None = None      # LEDGER_SEAL_SECRET: the key commits are sealed with (ADR 0010)
    tokens_file: Path | None = None
    token_platform: str | None = None
    token_supervisor: str | None = None
    token_admin: str | None = None
    stream_replicas: int | None = None  # LEDGER_STREAM_REPLICAS: 3 on an R3 cluster; None keeps what exists
    pack_archive: Path | None = None    # LEDGER_PACK_ARCHIVE: pack sets an audit over HTTP may name

    @property
    def pack_archive_dir(self) -> Path:
        """Where `POST /v1/audits` looks up `pack_dir`/`what_if_dir` names: LEDGER_PACK_ARCHIVE or
        ``<data_dir>/pack-archive`` (one sub-directory of pack files per name)."""
        return self.pack_archive if self.pack_archive is not None else self.data_dir / "pack-archive"

    @property
    def nats_users_path(self) -> Path:
        """The embedded server's NATS users and passwords: ``<data_dir>/nats-users.json``."""
        return self.data_dir / "nats-users.json"

    @property
    def nats_auth(self) -> dict[str, str]:
        """nats-py connect options for credentials not in the URL (an nkey seed file)."""
        return {"nkeys_seed": str(self.nats_nkey_seed)} if self.nats_nkey_seed is not None else {}

    @property
    def tokens_path(self) -> Path:
        """The tokens file in use: LEDGER_TOKENS_FILE or ``<data_dir>/tokens.json``."""
        return self.tokens_file if self.tokens_file is not None else self.data_dir / "tokens.json"

    @property
    def explicit_tokens(self) -> dict[str, str]:
        """Role tokens given in the environment (only the roles that were set)."""
        given = {
            "platform": self.token_platform,
            "supervisor": self.token_supervisor,
            "admin": self.token_admin,
        }
        return {role: tok for role, tok in given.items() if tok is not None}


def _get(env: Mapping[str, str], name: str) -> str | None:
    """A variable's value, with unset and blank treated alike."""
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a TCP port number (0-65535), got {raw!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{name} must be a TCP port number (0-65535), got {port}")
    return port


def _replicas(env: Mapping[str, str], name: str) -> int | None:
    raw = _get(env, name)
    if raw is None:
        return None
    if raw not in {"1", "3", "5"}:
        raise ValueError(f"{name} must be 1, 3 or 5 (JetStream replica count), got {raw!r}")
    return int(raw)


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = _get(env, name)
    if raw is None:
        return None
    # NATS_URL may list several servers separated by commas.
    for part in raw.split(","):
        if not part.strip().lower().startswith(schemes):
            # The value is not echoed: it may carry a password.
            raise ValueError(f"{name} must start with one of {', '.join(schemes)}")
    return raw


def _secret(env: Mapping[str, str], name: str, min_len: int = 1) -> str | None:
    raw = _get(env, name)
    if raw is None:
        return None
    if any(ch.isspace() for ch in raw):
        raise ValueError(f"{name} must not contain whitespace")
    if len(raw) < min_len:
        raise ValueError(f"{name} is too short: use at least {min_len} characters (e.g. `openssl rand -hex 32`)")
    return raw


def load_settings(env: Mapping[str, str] = os.environ) -> Settings:
    """Build ``Settings`` from ``env``; raise ``ValueError`` naming the bad variable."""
    data_dir = Path(_get(env, "LEDGER_DATA_DIR") or ".ledger").expanduser()
    tokens_file = _get(env, "LEDGER_TOKENS_FILE")
    pack_archive = _get(env, "LEDGER_PACK_ARCHIVE")
    nkey_seed = _get(env, "LEDGER_NATS_NKEY_SEED")
    if nkey_seed is not None and not Path(nkey_seed).expanduser().is_file():
        raise ValueError("LEDGER_NATS_NKEY_SEED must name a readable nkey seed file")
    http_host = _get(env, "LEDGER_HTTP_HOST") or "127.0.0.1"
    if any(ch.isspace() for ch in http_host) or "/" in http_host:
        raise ValueError(f"LEDGER_HTTP_HOST must be a host name or IP address, got {http_host!r}")
    return Settings(
        nats_url=_url(env, "NATS_URL", _NATS_SCHEMES),
        nats_admin_url=_url(env, "LEDGER_NATS_ADMIN_URL", _NATS_SCHEMES),
        nats_nkey_seed=Path(nkey_seed).expanduser() if nkey_seed else None,
        database_url=_url(env, "DATABASE_URL", _PG_SCHEMES),
        data_dir=data_dir,
        nats_port=_port(env, "LEDGER_NATS_PORT", 4222),
        http_port=_port(env, "LEDGER_HTTP_PORT", 8000),
        http_host=http_host,
        person_key_secret=_secret(env, "LEDGER_PERSON_KEY_SECRET", _MIN_SECRET_LEN),
        seal_secret=_secret(env, "LEDGER_SEAL_SECRET", _MIN_SECRET_LEN),
        tokens_file=Path(tokens_file).expanduser() if tokens_file else None,
        token_platform=_secret(env, "LEDGER_TOKEN_PLATFORM"),
        token_supervisor=_secret(env, "LEDGER_TOKEN_SUPERVISOR"),
        token_admin=_secret(env, "LEDGER_TOKEN_ADMIN"),
        stream_replicas=_replicas(env, "LEDGER_STREAM_REPLICAS"),
        pack_archive=Path(pack_archive).expanduser() if pack_archive else None,
    )
