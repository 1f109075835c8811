"""Per-tenant key-encryption keys: derived from one master key with HKDF, or supplied by a KMS hook."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tasks.artifacts.errors import ArtifactConfigError, ArtifactKeyError

logger = logging.getLogger(__name__)

MASTER_KEY_BYTES = 32
_KEK_INFO = b"toolrunner/artifact-kek/v1\x00"
_ID_INFO = b"toolrunner/artifact-key-id/v1"
_NONCE_BYTES = 12


class KeyProvider(Protocol):
    """Wraps and unwraps per-artifact data keys for a tenant; a KMS client plugs in here."""

    @property
    def key_id(self) -> str:
        """A short public name of the key material, stored in each artifact's header."""
        ...

    def wrap(self, tenant: str, data_key: bytes, aad: bytes) -> bytes:
        """Encrypt data_key for tenant, bound to aad."""
        ...

    def unwrap(self, tenant: str, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        """Return the data key, or raise ArtifactKeyError when it is not this tenant's under this key."""
        ...


class MasterKeyProvider:
    """Derives each tenant's key-encryption key from one master key: HKDF-SHA256 with the tenant in `info`."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) < MASTER_KEY_BYTES:
            raise ArtifactConfigError(f"the artifact master key must be at least {MASTER_KEY_BYTES} random bytes")
        self._master = master_key
        self._keks: dict[str, AESGCM] = {}
        fingerprint = hashlib.sha256(_derive(master_key, _ID_INFO)).hexdigest()[:16]
        self._key_id = f"hkdf:{fingerprint}"

    def __repr__(self) -> str:
        return f"<MasterKeyProvider {self._key_id}>"

    @property
    def key_id(self) -> str:
        """The master key's fingerprint: tells which master key sealed an artifact, reveals nothing of it."""
        return self._key_id

    def wrap(self, tenant: str, data_key: bytes, aad: bytes) -> bytes:
        """AES-256-GCM of the data key under the tenant's KEK with a random nonce."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._kek(tenant).encrypt(nonce, data_key, aad)

    def unwrap(self, tenant: str, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        """The data key, after checking the key id and the tag."""
        if key_id != self._key_id:
            raise ArtifactKeyError(
                f"the artifact was sealed under master key {key_id!r}, this process has {self._key_id!r}"
            )
        try:
            return self._kek(tenant).decrypt(wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise ArtifactKeyError(
                f"the artifact's data key does not open with tenant {tenant!r}'s key: "
                "it belongs to another tenant or another object, or its header was altered"
            ) from exc

    def _kek(self, tenant: str) -> AESGCM:
        if tenant not in self._keks:
            self._keks[tenant] = AESGCM(_derive(self._master, _KEK_INFO + tenant.encode()))
        return self._keks[tenant]


def _derive(master: bytes, info: bytes) -> bytes:
    # The master key is uniformly random, so HKDF without a salt is sound (RFC 5869, section 3.1).
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


def parse_master_key(text: str) -> bytes:
    """Decode a base64 (standard or URL-safe) master key of at least 32 bytes."""
    try:
        key = base64.b64decode(text.strip().replace("-", "+").replace("_", "/"), validate=True)
    except binascii.Error as exc:
        raise ArtifactConfigError("the artifact master key must be base64 (e.g. `openssl rand -base64 32`)") from exc
    if len(key) < MASTER_KEY_BYTES:
        raise ArtifactConfigError(f"the artifact master key decodes to {len(key)} bytes; it needs {MASTER_KEY_BYTES}")
    return key


def new_master_key() -> str:
    """A fresh random master key, base64-encoded."""
    return base64.b64encode(secrets.token_bytes(MASTER_KEY_BYTES)).decode()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_or_create_key_file(path: Path, what: str = "the artifact master key") -> bytes:
    """Read the key in path, creating it (mode 0600) with a fresh key the first time (`what`: its name in the log)."""
    try:
        return parse_master_key(path.read_text())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(new_master_key() + "\n")
        fh.flush()
        os.fsync(fh.fileno())  # on disk before any artifact is written under it: a crash never leaves it empty
    try:
        # link() publishes the complete file or fails: a second worker never reads a half-written key.
        os.link(temp, path)
        _fsync_directory(path.parent)
        logger.warning(
            "created %s %s (mode 0600); back it up: without it nothing sealed under it can be read", what, path
        )
    except FileExistsError:
        pass  # another worker created it a moment ago: use theirs
    finally:
        temp.unlink()
    return parse_master_key(path.read_text())
