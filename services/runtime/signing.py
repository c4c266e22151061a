"""The ledger's own Ed25519 key, which signs the stream digests handed to supervisors (ADR 0011).

Why a key of its own: a digest is only worth keeping elsewhere if nobody but the
ledger could have issued it, so it is signed; the supervisor checks it with the
public key (`GET /v1/digest/key`, `ledger digest --key`), which may be shared
freely. The private key is generated once into the data directory
(``digest_signing_key.pem``, PKCS#8 PEM, mode 0600), like the person-key secret
(services/runtime/secrets.py): a restart signs with the same key. A deployment
that keeps keys elsewhere mounts that file into the data directory. Losing it only
means later digests carry a new key id; earlier digests still verify with the
public key the supervisor kept.
"""
from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.runtime.secrets import _write_once
from services.runtime.settings import Settings

__all__ = ["KEY_FILE", "PublicKeyView", "SigningKey", "key_id", "public_key_from", "signing_key", "verify"]

KEY_FILE = "digest_signing_key.pem"
ALGORITHM = "ed25519"


class PublicKeyView(msgspec.Struct, frozen=True):
    """The public half, as `GET /v1/digest/key` and `ledger digest --key` give it."""
    algorithm: str
    key_id: str            # first 16 bytes of SHA-256 over the raw 32-byte public key, hex
    public_key: str        # the raw 32-byte public key, base64
    pem: str               # the same as SubjectPublicKeyInfo PEM (openssl pkey -pubin reads it)


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw(public)).hexdigest()[:32]


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class SigningKey:
    def __init__(self, private: Ed25519PrivateKey):
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)

    def sign(self, payload: bytes) -> str:
        """The Ed25519 signature of `payload`, base64."""
        return base64.b64encode(self._private.sign(payload)).decode()

    def view(self) -> PublicKeyView:
        pem = self.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return PublicKeyView(ALGORITHM, self.key_id, base64.b64encode(_raw(self.public)).decode(), pem.decode())


def _new_pem() -> str:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def signing_key(settings: Settings) -> SigningKey:
    """``<data_dir>/digest_signing_key.pem``, generated (0600) on first use."""
    path = settings.data_dir / KEY_FILE
    text = _write_once(path, _new_pem)
    try:
        private = serialization.load_pem_private_key(text.encode(), password=None)
    except ValueError as exc:
        raise ValueError(f"{path} is not a PEM private key ({exc}); restore it from backup") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise ValueError(f"{path} holds a {type(private).__name__}, not an Ed25519 key")
    return SigningKey(private)


def public_key_from(text: str | bytes) -> Ed25519PublicKey:
    """A public key as a supervisor kept it: the PEM, the base64 raw key, or the JSON of `PublicKeyView`."""
    data = text.encode() if isinstance(text, str) else text
    data = data.strip()
    if data.startswith(b"{"):
        data = msgspec.json.decode(data, type=PublicKeyView).public_key.encode()
    if data.startswith(b"-----BEGIN"):
        public = serialization.load_pem_public_key(data)
        if not isinstance(public, Ed25519PublicKey):
            raise ValueError(f"not an Ed25519 public key: {type(public).__name__}")
        return public
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(data, validate=True))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an Ed25519 public key (PEM, base64 or key JSON): {exc}") from None


def read_public_key(path: Path) -> Ed25519PublicKey:
    return public_key_from(path.read_bytes())


def verify(public: Ed25519PublicKey, payload: bytes, signature: str) -> bool:
    try:
        public.verify(base64.b64decode(signature, validate=True), payload)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
