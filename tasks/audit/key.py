"""The audit key: TOOLRUNNER_AUDIT_KEY, split with HKDF into an encryption key and a MAC key, never a tenant's.

Every stored audit object is `MAGIC | nonce (12) | AES-256-GCM(zlib(plaintext), aad = the object's key)`, so an
object moved to another key (another stream or period) fails authentication like an altered one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import zlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tasks.audit.errors import AuditConfigError, AuditIntegrityError

KEY_BYTES = 32
MAGIC = b"TRU\x01"
_NONCE_BYTES = 12
_AAD = b"toolrunner/audit/v1\x00"
_FIX = "set TOOLRUNNER_AUDIT_KEY to base64 of 32 random bytes (`openssl rand -base64 32`), kept by operators only"


class AuditKey:
    """The operators' audit key: seals and opens audit objects, and MACs segment heads."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < KEY_BYTES:
            raise AuditConfigError(f"the audit key is {len(secret)} bytes, it needs {KEY_BYTES}: {_FIX}")
        self._aead = AESGCM(_derive(secret, b"toolrunner/audit-enc/v1"))
        self._mac_key = _derive(secret, b"toolrunner/audit-mac/v1")
        self.key_id = "hkdf:" + hashlib.sha256(_derive(secret, b"toolrunner/audit-id/v1")).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"<AuditKey {self.key_id}>"

    @classmethod
    def parse(cls, text: str | None) -> AuditKey:
        """The key base64 text (standard or URL-safe) writes; AuditConfigError saying how to fix it otherwise."""
        if not text or not text.strip():
            raise AuditConfigError(f"no audit key: {_FIX}")
        try:
            secret = base64.b64decode(text.strip().replace("-", "+").replace("_", "/"), validate=True)
        except binascii.Error:
            raise AuditConfigError(f"the audit key is not base64: {_FIX}") from None
        return cls(secret)

    def seal(self, object_key: str, plaintext: bytes) -> bytes:
        """Compress and encrypt plaintext, bound to the key of the object it is stored as."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return MAGIC + nonce + self._aead.encrypt(nonce, zlib.compress(plaintext, 1), _AAD + object_key.encode())

    def open(self, object_key: str, sealed: bytes) -> bytes:
        """The plaintext of a sealed object, or AuditIntegrityError when it was altered or moved."""
        if sealed[: len(MAGIC)] != MAGIC:
            raise AuditIntegrityError(f"{object_key}: not a sealed audit object (bad header)")
        nonce, body = sealed[len(MAGIC) : len(MAGIC) + _NONCE_BYTES], sealed[len(MAGIC) + _NONCE_BYTES :]
        try:
            return zlib.decompress(self._aead.decrypt(nonce, body, _AAD + object_key.encode()))
        except InvalidTag:
            raise AuditIntegrityError(
                f"{object_key}: failed authentication: altered, truncated, moved from another key, "
                "or sealed under another audit key"
            ) from None

    def mac(self, data: bytes) -> str:
        """HMAC-SHA256 of data under the MAC subkey, hex."""
        return hmac.new(self._mac_key, data, hashlib.sha256).hexdigest()


def new_audit_key() -> str:
    """A fresh random audit key, base64-encoded."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def _derive(secret: bytes, info: bytes) -> bytes:
    # The key is uniformly random, so HKDF without a salt is sound (RFC 5869, section 3.1), as for artifact keys.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)
