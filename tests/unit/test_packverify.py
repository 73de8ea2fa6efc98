"""The evidence pack's standalone verifier: its Ed25519 (RFC 8032) agrees with the
`cryptography` package, and its chain and checkpoint definitions with finsync's own."""

from __future__ import annotations

import ast
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from finsync.audit import chain, packverify
from finsync.audit.packverify import ed25519_verify

# RFC 8032, section 7.1, TEST 1 (empty message) and TEST 2 (one byte).
RFC_VECTORS = [
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39"
     "701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f36"
     "13d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
]


def _public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def test_rfc_8032_vectors_verify_and_a_changed_message_does_not() -> None:
    for public, message, signature in RFC_VECTORS:
        key, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
        assert ed25519_verify(key, msg, sig)
        assert not ed25519_verify(key, msg + b"\x00", sig)


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=64 * 8 - 1))
def test_agrees_with_cryptography_and_refuses_any_flipped_signature_bit(
        message: bytes, bit: int) -> None:
    key = Ed25519PrivateKey.generate()
    signature = key.sign(message)
    assert ed25519_verify(_public(key), message, signature)
    flipped = bytearray(signature)
    flipped[bit // 8] ^= 1 << (bit % 8)
    assert not ed25519_verify(_public(key), message, bytes(flipped))


def test_refuses_another_key_and_malformed_input() -> None:
    key = Ed25519PrivateKey.generate()
    signature = key.sign(b"checkpoint")
    assert not ed25519_verify(_public(Ed25519PrivateKey.generate()), b"checkpoint", signature)
    assert not ed25519_verify(_public(key)[:31], b"checkpoint", signature)
    assert not ed25519_verify(_public(key), b"checkpoint", signature[:63])
    # S >= L (the group order) is refused, as RFC 8032 5.1.7 step 1 requires.
    s_too_big = signature[:32] + (packverify.L + 1).to_bytes(32, "little")
    assert not ed25519_verify(_public(key), b"checkpoint", s_too_big)


def test_hashes_records_and_checkpoints_exactly_as_finsync() -> None:
    record = {"seq": 3, "at": "2026-12-01T09:00:00.000001Z", "actor": "ar.clerk",
              "action": "exception.resolve", "object_type": "exception", "object_id": "7",
              "before": '{"status":"open"}', "after": None, "reason": "payé — wire",
              "correlation_id": None, "prev_hash": "a" * 64}
    assert packverify.record_hash(record) == chain.record_hash(record)
    assert packverify.FIELDS == chain.FIELDS and packverify.GENESIS == chain.GENESIS
    stated = {"seq": 3, "hash": "b" * 64, "signed_at": "2026-12-02T00:00:00.000000Z",
              "reason": "close:le_us:2026-11"}
    assert packverify.checkpoint_message(stated) == chain.checkpoint_message(
        3, "b" * 64, "2026-12-02T00:00:00.000000Z", "close:le_us:2026-11")


def test_imports_nothing_but_the_standard_library() -> None:
    tree = ast.parse(Path(packverify.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {str(node.module).split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert imported <= {"__future__", "argparse", "hashlib", "json", "sys", "pathlib",
                        "typing"}
