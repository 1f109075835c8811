"""Streaming authenticated encryption of one artifact: AES-256-GCM over fixed-size segments under a fresh data key.

Format (all integers big-endian)::

    header  = "TRA" 0x01 | segment size u32 | nonce prefix (7) | key id len u8 | key id | wrapped len u16 | wrapped
    segment = AES-GCM(data key, nonce = prefix | counter u32 | last flag u8, plaintext, aad = header) (+16-byte tag)

Every segment carries `segment size` plaintext bytes except the last, which carries fewer (possibly none), so
the reader knows the last one by its length alone. The flag and counter in the nonce make a truncated, reordered,
appended or borrowed segment fail its tag; the header as AAD binds every segment to this data key and these
parameters; the data key is wrapped with the object's key as AAD, so an artifact moved to another name or tenant
does not open. This is the construction of Tink's streaming AEAD (segment nonces with a last-segment flag).
"""

from __future__ import annotations

import io
import secrets
import struct
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tasks.artifacts.errors import ArtifactIntegrityError
from tasks.artifacts.keys import KeyProvider

MAGIC = b"TRA\x01"
SEGMENT_SIZE = 1 << 20
MIN_SEGMENT_SIZE = 16
MAX_SEGMENT_SIZE = 16 << 20
TAG_BYTES = 16
PREFIX_BYTES = 7
_FIXED = struct.Struct(">4sI7sB")
_MAX_SEGMENTS = 1 << 32


def key_aad(tenant: str, object_key: str) -> bytes:
    """What a data key is bound to: the tenant and the object's key in the store."""
    return b"toolrunner/artifact/v1\x00" + tenant.encode() + b"\x00" + object_key.encode()


class Sealer:
    """Encrypts one artifact incrementally, handing each finished segment to `emit`."""

    def __init__(
        self, keys: KeyProvider, tenant: str, object_key: str, emit: Callable[[bytes], None], segment_size: int
    ) -> None:
        _check_segment_size(segment_size)
        data_key = AESGCM.generate_key(bit_length=256)
        wrapped = keys.wrap(tenant, data_key, key_aad(tenant, object_key))
        self._prefix = secrets.token_bytes(PREFIX_BYTES)
        self._header = _header(segment_size, self._prefix, keys.key_id, wrapped)
        self._aead = AESGCM(data_key)
        self._emit = emit
        self._size = segment_size
        self._buffer = bytearray()
        self._counter = 0
        emit(self._header)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Take plaintext; full segments leave at once, the rest waits for more."""
        view = memoryview(data)
        if not self._buffer:
            # The common case (1 MiB blocks from the archive reader) skips the copy into the buffer.
            while len(view) >= self._size:
                self._seal(view[: self._size], last=False)
                view = view[self._size :]
        self._buffer += view
        while len(self._buffer) >= self._size:
            self._seal(self._buffer[: self._size], last=False)
            del self._buffer[: self._size]

    def finish(self) -> None:
        """Seal what is left as the last segment (shorter than a full one, possibly empty)."""
        self._seal(self._buffer, last=True)
        self._buffer = bytearray()

    def _seal(self, plaintext: bytes | bytearray | memoryview, last: bool) -> None:
        nonce = _nonce(self._prefix, self._counter, last)
        self._counter += 1
        self._emit(self._aead.encrypt(nonce, plaintext, self._header))


class OpenedReader(io.RawIOBase):
    """Reads an artifact's plaintext, releasing each segment only after its tag checked out."""

    def __init__(self, read: Callable[[int], bytes], keys: KeyProvider, tenant: str, object_key: str) -> None:
        self._read = read
        self._header, segment_size, self._prefix, key_id, wrapped = _read_header(read)
        data_key = keys.unwrap(tenant, key_id, wrapped, key_aad(tenant, object_key))
        self._aead = AESGCM(data_key)
        self._size = segment_size
        self._counter = 0
        self._pending = memoryview(b"")
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._done:
            self._pending = memoryview(self._next_segment())
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _next_segment(self) -> bytes:
        sealed = _read_exact(self._read, self._size + TAG_BYTES)
        last = len(sealed) < self._size + TAG_BYTES
        if len(sealed) < TAG_BYTES:
            raise ArtifactIntegrityError("the artifact is truncated: its last segment is missing")
        if last and self._read(1):
            raise ArtifactIntegrityError("the artifact has bytes after its last segment")
        if self._counter >= _MAX_SEGMENTS:
            raise ArtifactIntegrityError("the artifact has more segments than its format allows")
        try:
            plaintext = self._aead.decrypt(_nonce(self._prefix, self._counter, last), sealed, self._header)
        except InvalidTag as exc:
            raise ArtifactIntegrityError(
                f"segment {self._counter} of the artifact failed authentication: "
                "it was altered, truncated, reordered or taken from another artifact"
            ) from exc
        self._counter += 1
        self._done = last
        return plaintext


def _check_segment_size(size: int) -> None:
    if not MIN_SEGMENT_SIZE <= size <= MAX_SEGMENT_SIZE:
        raise ValueError(f"segment size must be within {MIN_SEGMENT_SIZE}..{MAX_SEGMENT_SIZE} bytes, got {size}")


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    if counter >= _MAX_SEGMENTS:
        raise ValueError("an artifact cannot have more than 2**32 segments")
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


def _header(segment_size: int, prefix: bytes, key_id: str, wrapped: bytes) -> bytes:
    kid = key_id.encode("ascii")
    return _FIXED.pack(MAGIC, segment_size, prefix, len(kid)) + kid + struct.pack(">H", len(wrapped)) + wrapped


def _read_header(read: Callable[[int], bytes]) -> tuple[bytes, int, bytes, str, bytes]:
    fixed = _read_exact(read, _FIXED.size)
    if len(fixed) < _FIXED.size or fixed[:4] != MAGIC:
        raise ArtifactIntegrityError("the object is not an encrypted toolrunner artifact (bad or missing header)")
    _magic, segment_size, prefix, kid_len = _FIXED.unpack(fixed)
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise ArtifactIntegrityError(f"the artifact header names an impossible segment size {segment_size}")
    kid = _read_exact(read, kid_len)
    raw_len = _read_exact(read, 2)
    wrapped_len = struct.unpack(">H", raw_len)[0] if len(raw_len) == 2 else 0
    wrapped = _read_exact(read, wrapped_len)
    if len(kid) != kid_len or not wrapped_len or len(wrapped) != wrapped_len:
        raise ArtifactIntegrityError("the artifact header is truncated")
    try:
        key_id = kid.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ArtifactIntegrityError("the artifact header has a malformed key id") from exc
    return fixed + kid + raw_len + wrapped, segment_size, prefix, key_id, wrapped


def _read_exact(read: Callable[[int], bytes], n: int) -> bytes:
    """Up to n bytes: fewer only at the end of the stream."""
    parts: list[bytes] = []
    left = n
    while left:
        block = read(left)
        if not block:
            break
        parts.append(block)
        left -= len(block)
    return b"".join(parts)
