"""A broken or huge get_archive stream ends in this module's errors, in bounded memory (no Docker)."""

from __future__ import annotations

import tarfile
import tracemalloc
from collections.abc import Iterator

import pytest
import requests.exceptions
import urllib3.exceptions

from isolation import IsolationError, OutputReadError, OutputReadTimeoutError
from isolation.archive import MemorySink
from isolation.tarread import ChunkReader, ReadLimits, read_archive
from tests.unit.helpers import LIMITS, chunks_of, make_tar, read

GOOD = make_tar(("data/a", b"x" * 1000), ("data/b", b"y" * 10))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(GOOD[:100], id="header-cut-short"),
        pytest.param(GOOD[:700], id="file-data-cut-short"),
        pytest.param(b"garbage!" * 200, id="not-a-tar"),
        pytest.param(GOOD[:512].replace(b"data/a", b"data/\xff"), id="bad-checksum"),
    ],
)
def test_a_truncated_or_malformed_archive_raises_an_output_read_error(data: bytes) -> None:
    with pytest.raises(OutputReadError, match="truncated or malformed") as caught:
        read(data, {"a", "b"})
    assert isinstance(caught.value.__cause__, tarfile.TarError)


def broken_after(data: bytes, error: Exception) -> Iterator[bytes]:
    """The first chunks of data, then the transport error a dropped HTTP stream raises."""
    yield from chunks_of(data[:600], 300)
    raise error


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(requests.exceptions.ChunkedEncodingError("IncompleteRead(0 bytes read)"), id="chunk-cut"),
        pytest.param(urllib3.exceptions.ProtocolError("Connection broken", ConnectionResetError()), id="reset"),
        pytest.param(requests.exceptions.ConnectionError("Connection aborted."), id="aborted"),
    ],
)
def test_a_stream_that_breaks_off_mid_transfer_raises_an_output_read_error(error: Exception) -> None:
    with pytest.raises(OutputReadError, match="broke off mid-stream"):
        read_archive(ChunkReader(broken_after(GOOD, error), LIMITS), {"a", "b"}, True, LIMITS, MemorySink())


def test_a_stream_whose_socket_read_times_out_raises_an_output_read_timeout_error() -> None:
    stalled = requests.exceptions.ConnectionError(
        urllib3.exceptions.ReadTimeoutError(None, "/archive", "Read timed out.")  # type: ignore[arg-type]
    )
    with pytest.raises(OutputReadTimeoutError, match="stopped sending"):
        read_archive(ChunkReader(broken_after(GOOD, stalled), LIMITS), {"a", "b"}, True, LIMITS, MemorySink())


def test_read_errors_belong_to_the_isolation_error_tree() -> None:
    assert issubclass(OutputReadTimeoutError, OutputReadError)
    assert issubclass(OutputReadError, IsolationError)


def tiny_entries(count: int) -> Iterator[bytes]:
    """A get_archive stream of `count` empty files, then the wanted one, built a megabyte at a time."""
    info = tarfile.TarInfo("data/junk")
    header = info.tobuf(format=tarfile.PAX_FORMAT)
    for start in range(0, count, 2048):
        yield header * min(2048, count - start)
    yield make_tar(("data/wanted", b"ok"))


def peak_bytes_reading(count: int) -> int:
    """tracemalloc's peak while reading the wanted file from behind `count` tiny entries."""
    limits = ReadLimits(max_file_bytes=1 << 20, max_total_bytes=1 << 30, timeout_seconds=300)
    sink = MemorySink()
    tracemalloc.start()
    try:
        read_archive(ChunkReader(tiny_entries(count), limits), {"wanted"}, True, limits, sink)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.result() == {"wanted": b"ok"}
    return peak


def test_memory_does_not_grow_with_the_number_of_entries_in_the_archive() -> None:
    # TarFile keeps every header it reads (~560 bytes each: 500k entries held +266 MiB), so 40k extra
    # entries would add about 21 MiB; the reader must stay flat.
    few, many = peak_bytes_reading(5_000), peak_bytes_reading(45_000)
    assert many - few < 1 << 20, f"peak grew by {(many - few) >> 10} KiB for 40k more entries"
