"""The segmented AES-GCM format: round trips, and every kind of tampering fails loudly."""

from __future__ import annotations

import io
import os

import pytest

from tasks.artifacts import ArtifactIntegrityError, ArtifactKeyError, MasterKeyProvider
from tasks.artifacts.crypto import TAG_BYTES, OpenedReader, Sealer

SEGMENT = 64
KEY = "tenants/acme/runs/r1/t1/out.bin"


@pytest.fixture
def keys() -> MasterKeyProvider:
    return MasterKeyProvider(bytes(range(32)))


def seal(keys: MasterKeyProvider, data: bytes, tenant: str = "acme", key: str = KEY, writes: int = 7) -> bytes:
    out: list[bytes] = []
    sealer = Sealer(keys, tenant, key, out.append, SEGMENT)
    step = max(1, len(data) // writes)
    for i in range(0, len(data), step):
        sealer.write(data[i : i + step])
    sealer.finish()
    return b"".join(out)


def unseal(keys: MasterKeyProvider, blob: bytes, tenant: str = "acme", key: str = KEY) -> bytes:
    return OpenedReader(io.BytesIO(blob).read, keys, tenant, key).read()


def header_len(blob: bytes) -> int:
    kid_len = blob[15]
    wrapped_len = int.from_bytes(blob[16 + kid_len : 18 + kid_len], "big")
    return 18 + kid_len + wrapped_len


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 10 * SEGMENT, 10 * SEGMENT + 5])
def test_sealed_bytes_open_to_the_same_bytes(keys: MasterKeyProvider, size: int) -> None:
    data = os.urandom(size)
    assert unseal(keys, seal(keys, data)) == data


def test_the_last_segment_is_always_shorter_than_a_full_one(keys: MasterKeyProvider) -> None:
    blob = seal(keys, os.urandom(3 * SEGMENT))
    assert len(blob) - header_len(blob) == 3 * (SEGMENT + TAG_BYTES) + TAG_BYTES


def test_a_plaintext_marker_never_appears_in_the_sealed_bytes(keys: MasterKeyProvider) -> None:
    marker = b"PLAINTEXT-MARKER-7d1f"
    blob = seal(keys, marker * 50)
    assert marker not in blob
    assert marker[:8] not in blob


def test_two_seals_of_the_same_bytes_differ(keys: MasterKeyProvider) -> None:
    data = b"same" * 100
    assert seal(keys, data) != seal(keys, data)


@pytest.mark.parametrize("where", ["header", "first segment", "tag", "last byte"])
def test_a_flipped_byte_anywhere_fails_authentication(keys: MasterKeyProvider, where: str) -> None:
    blob = bytearray(seal(keys, os.urandom(5 * SEGMENT + 3)))
    start = header_len(blob)
    offset = {"header": 5, "first segment": start + 3, "tag": start + SEGMENT + 2, "last byte": len(blob) - 1}[where]
    blob[offset] ^= 0x01
    with pytest.raises(ArtifactIntegrityError):
        unseal(keys, bytes(blob))


@pytest.mark.parametrize("cut", [1, TAG_BYTES, SEGMENT + TAG_BYTES, 2 * (SEGMENT + TAG_BYTES) + TAG_BYTES])
def test_a_truncated_artifact_fails_instead_of_ending_early(keys: MasterKeyProvider, cut: int) -> None:
    blob = seal(keys, os.urandom(4 * SEGMENT + 10))
    with pytest.raises(ArtifactIntegrityError):
        unseal(keys, blob[:-cut])


def test_an_artifact_cut_at_a_segment_boundary_fails(keys: MasterKeyProvider) -> None:
    blob = seal(keys, os.urandom(4 * SEGMENT + 10))
    full = SEGMENT + TAG_BYTES
    with pytest.raises(ArtifactIntegrityError, match="truncated"):
        unseal(keys, blob[: header_len(blob) + 2 * full])


def test_reordered_segments_fail(keys: MasterKeyProvider) -> None:
    blob = seal(keys, os.urandom(4 * SEGMENT + 10))
    start, full = header_len(blob), SEGMENT + TAG_BYTES
    first, second = blob[start : start + full], blob[start + full : start + 2 * full]
    swapped = blob[:start] + second + first + blob[start + 2 * full :]
    with pytest.raises(ArtifactIntegrityError, match="segment 0"):
        unseal(keys, swapped)


def test_a_segment_taken_from_another_artifact_fails(keys: MasterKeyProvider) -> None:
    one, other = seal(keys, os.urandom(4 * SEGMENT)), seal(keys, os.urandom(4 * SEGMENT))
    start, full = header_len(one), SEGMENT + TAG_BYTES
    mixed = one[: start + full] + other[start + full : start + 2 * full] + one[start + 2 * full :]
    with pytest.raises(ArtifactIntegrityError, match="segment 1"):
        unseal(keys, mixed)


def test_bytes_appended_after_the_last_segment_fail(keys: MasterKeyProvider) -> None:
    with pytest.raises(ArtifactIntegrityError):
        unseal(keys, seal(keys, os.urandom(100)) + b"x")


def test_an_object_that_is_no_artifact_is_refused(keys: MasterKeyProvider) -> None:
    with pytest.raises(ArtifactIntegrityError, match="not an encrypted"):
        unseal(keys, b"plain text that was never sealed")


def test_another_tenant_cannot_open_an_artifact(keys: MasterKeyProvider) -> None:
    blob = seal(keys, b"secret evidence")
    with pytest.raises(ArtifactKeyError, match="tenant 'other'"):
        unseal(keys, blob, tenant="other", key=KEY.replace("acme", "other"))


def test_an_artifact_copied_to_another_key_does_not_open(keys: MasterKeyProvider) -> None:
    blob = seal(keys, b"secret evidence")
    with pytest.raises(ArtifactKeyError):
        unseal(keys, blob, key=KEY.replace("out.bin", "renamed.bin"))


def test_another_master_key_cannot_open_an_artifact(keys: MasterKeyProvider) -> None:
    blob = seal(keys, b"secret evidence")
    with pytest.raises(ArtifactKeyError, match="sealed under master key"):
        unseal(MasterKeyProvider(bytes(32)), blob)


def test_a_short_master_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32"):
        MasterKeyProvider(b"short")


def test_the_provider_repr_shows_the_key_id_and_not_the_key(keys: MasterKeyProvider) -> None:
    assert keys.key_id in repr(keys)
    assert bytes(range(32)).hex() not in repr(keys)
