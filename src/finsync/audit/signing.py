"""The checkpoint signing key and the public keys a verifier trusts.

Rules:
- The private key is a secret: it comes from a file (`[audit] signing_key_file`) or an
  environment variable (`[audit] signing_key_env`), never from finsync.toml in clear. It is
  an Ed25519 key, as PKCS#8 PEM or as its 32-byte seed in 64 hex digits
  (`finsync audit keygen` writes one).
- A verifier trusts the signer's own public key and the `[audit] public_keys` listed (hex):
  the keys of earlier checkpoints after a rotation, or the only key a host that verifies
  without signing has. A checkpoint signed by any other key fails verification, so someone
  who can write the database cannot sign a checkpoint of their own.
- The key is read once, when the keyring is built; its text is never echoed in an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from finsync.domain.errors import FinsyncError


class AuditKeyError(FinsyncError):
    code = "audit_key_error"


@dataclass(frozen=True, slots=True)
class Keyring:
    """The signing key (None: this host does not sign) and the trusted public keys (hex)."""

    signer: Ed25519PrivateKey | None
    trusted: frozenset[str]

    @staticmethod
    def of(signer: Ed25519PrivateKey | None, public_keys: tuple[str, ...] = ()) -> Keyring:
        trusted = {_checked_public(k) for k in public_keys}
        if signer is not None:
            trusted.add(public_hex(signer))
        return Keyring(signer, frozenset(trusted))

    def sign(self, message: bytes) -> tuple[str, str]:
        """(public key hex, signature hex) of `message`."""
        if self.signer is None:
            raise AuditKeyError("no audit signing key is configured: set [audit] "
                                "signing_key_file or signing_key_env (`finsync audit keygen`)")
        return public_hex(self.signer), self.signer.sign(message).hex()

    def verifies(self, public_key: str, message: bytes, signature: str) -> bool:
        if public_key.lower() not in self.trusted:
            return False
        try:
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
            key.verify(bytes.fromhex(signature), message)
        except (ValueError, InvalidSignature):
            return False
        return True


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw).hex()


def load_signer(file: Path | None, env: str | None) -> Ed25519PrivateKey | None:
    """The key in `file`, else in the environment variable `env`; None if neither names
    one. A named file that cannot be read, or an unset variable, is an error."""
    if file is not None:
        try:
            text = file.read_text()
        except OSError as exc:
            raise AuditKeyError(f"cannot read the audit signing key file {file}: "
                                f"{exc.strerror}") from None
        return parse_private(text, f"the file {file}")
    if env is not None:
        value = os.environ.get(env)
        if not value:
            raise AuditKeyError(f"the environment variable {env} (the audit signing key) "
                                "is not set")
        return parse_private(value, f"the environment variable {env}")
    return None


def parse_private(text: str, where: str) -> Ed25519PrivateKey:
    stripped = text.strip()
    try:
        if stripped.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(stripped.encode(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise AuditKeyError(f"{where} holds a private key that is not Ed25519")
            return key
        seed = bytes.fromhex(stripped)
        if len(seed) != 32:
            raise ValueError("not 32 bytes")
        return Ed25519PrivateKey.from_private_bytes(seed)
    except ValueError:
        raise AuditKeyError(f"{where} does not hold an Ed25519 private key (PKCS#8 PEM, or "
                            "a 32-byte seed in 64 hex digits)") from None


def new_key_pem() -> tuple[str, str]:
    """A new key: (PKCS#8 PEM, public key hex)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, public_hex(key)


def write_new_key(path: Path) -> str:
    """A new key in a new file `path`, readable by its owner only (an existing file is
    never overwritten: `FileExistsError`); the public key, hex."""
    pem, public = new_key_pem()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(pem)
    return public


def _checked_public(text: str) -> str:
    value = text.strip().lower()
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(value))
    except ValueError:
        raise AuditKeyError(f"[audit] public_keys: {text!r} is not an Ed25519 public key in "
                            "64 hex digits") from None
    return value
