"""The archive reader's own header parsing: the engine's formats are read, anything else refused (no Docker)."""

from __future__ import annotations

import tarfile

import pytest

from isolation.archive import MemorySink
from isolation.errors import OutputReadError, UnsafeOutputError
from isolation.tarread import CHUNK, ChunkReader, ReadLimits, read_archive
from tests.unit.helpers import chunks_of, make_tar, read, special

BIG = ReadLimits(max_file_bytes=1 << 30, max_total_bytes=1 << 30, timeout_seconds=30)
LONG = "data/" + "ü" * 70 + "/" + "n" * 150


def tar_in(fmt: int, *entries: tarfile.TarInfo | tuple[str, bytes]) -> bytes:
    """make_tar, in the given tar format."""
    return make_tar(*entries, fmt=fmt)


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax-path", "gnu-longname"])
def test_long_unicode_names_are_read_from_pax_and_gnu_headers(fmt: int) -> None:
    data = tar_in(fmt, ("data/a", b"A"), (LONG, b"long"))
    assert read(data, {"a", LONG[5:]}) == {"a": b"A", LONG[5:]: b"long"}


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax-linkpath", "gnu-longlink"])
def test_a_symlink_with_a_long_target_is_refused_naming_the_whole_target(fmt: int) -> None:
    target = "/" + "t" * 200
    with pytest.raises(UnsafeOutputError, match=f"symlink to '{target}'"):
        read(tar_in(fmt, special("data/out", tarfile.SYMTYPE, target)), {"out"})


@pytest.mark.parametrize("chunk", [7, 511, 513, 65536, CHUNK + 1])
def test_the_bytes_read_do_not_depend_on_how_the_engine_chunks_the_stream(chunk: int) -> None:
    big = bytes(range(256)) * ((2 * CHUNK) // 256 + 7)
    data = make_tar(("data/a", b"A" * 700), ("data/big", big), ("data/z", b""))
    sink = MemorySink()
    read_archive(ChunkReader(chunks_of(data, chunk), BIG), {"big", "z"}, True, BIG, sink)
    assert sink.result() == {"big": big, "z": b""}


class _SizesSink:
    """Records the size of every write."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def open(self, name: str) -> _SizesSink:  # type: ignore[override]
        return self

    def __enter__(self) -> _SizesSink:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def write(self, data: memoryview | bytes) -> int:
        self.sizes.append(len(data))
        return len(data)


def test_a_file_reaches_the_sink_in_whole_chunk_sized_writes_from_its_start() -> None:
    size = 3 * CHUNK + 5
    data = make_tar(("data/big", b"\1" * size))
    sink = _SizesSink()
    read_archive(ChunkReader(chunks_of(data, 2 * CHUNK + 77), BIG), {"big"}, True, BIG, sink)  # type: ignore[arg-type]
    assert sink.sizes == [CHUNK, CHUNK, CHUNK, 5]


def with_type(header: bytes, kind: bytes) -> bytes:
    """A copy of a header block with another type flag and a recomputed checksum."""
    block = bytearray(header[:156] + kind + header[157:512])
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block) + header[512:]


@pytest.mark.parametrize(
    "kind",
    [tarfile.GNUTYPE_SPARSE, tarfile.CONTTYPE, tarfile.XGLTYPE, b"V", b"Z"],
    ids=["gnu-sparse", "contiguous", "global-pax", "volume-label", "vendor"],
)
def test_an_entry_of_a_type_the_engine_never_writes_is_refused_even_when_unwanted(kind: bytes) -> None:
    data = with_type(make_tar(("data/other", b"x")), kind)
    with pytest.raises(UnsafeOutputError, match="never writes"):
        read(data, {"a"})


def test_a_pax_sparse_file_is_refused() -> None:
    info = tarfile.TarInfo("data/a")
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}
    with pytest.raises(UnsafeOutputError, match="sparse"):
        read(tar_in(tarfile.PAX_FORMAT, info), {"a"})


def test_a_header_without_the_ustar_magic_is_a_malformed_archive() -> None:
    v7 = tarfile.TarInfo("data/a").tobuf(format=tarfile.USTAR_FORMAT)
    block = bytearray(v7[:257] + b"\0" * 8 + v7[265:])
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    with pytest.raises(OutputReadError, match="neither ustar nor GNU"):
        read(bytes(block) + b"\0" * 1024, {"a"})


def test_data_after_the_end_of_archive_marker_is_a_malformed_archive() -> None:
    with pytest.raises(OutputReadError, match="follows the end-of-archive"):
        read(make_tar(("data/a", b"A")) + b"hidden", {"a", "b"})


def test_a_pax_record_that_overruns_its_header_is_a_malformed_archive() -> None:
    info = tarfile.TarInfo("data/a")
    info.pax_headers = {"comment": "x"}
    data = tar_in(tarfile.PAX_FORMAT, info).replace(b"13 comment=x\n", b"99 comment=x\n")
    with pytest.raises(OutputReadError, match="malformed pax header"):
        read(data, {"a"})
