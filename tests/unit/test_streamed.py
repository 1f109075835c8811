"""The streamed workspace's pure parts: the attach frames, the marker line, the kept stdout, the inline inputs.

A fake socket hands out the bytes in whatever pieces a test chooses, so frame and marker boundaries fall anywhere.
"""

from __future__ import annotations

import base64
import io
import struct
import tarfile

import pytest

from isolation import InvalidFilenameError, inline_inputs, streams
from isolation.archive import MemorySink
from isolation.errors import DockerUnavailableError, OutputReadError, OutputReadTimeoutError
from isolation.streamed import INLINE_INPUT_BYTES, STREAM_LABEL, _Stream, size_bytes
from isolation.tarread import ChunkReader, ReadLimits, read_archive

MARK = b"toolrunner-io-0123456789abcdef"


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", kind, len(payload)) + payload


class FakeSocket:
    """recv() returns the next piece; an empty list of pieces is the end of the stream; TimeoutError on demand."""

    def __init__(self, pieces: list[bytes | BaseException]) -> None:
        self.pieces = pieces
        self.timeouts: list[float] = []
        self.closed = False

    def settimeout(self, timeout: float) -> None:
        self.timeouts.append(timeout)

    def recv(self, size: int) -> bytes:
        if not self.pieces:
            return b""
        piece = self.pieces.pop(0)
        if isinstance(piece, BaseException):
            raise piece
        return piece

    def close(self) -> None:
        self.closed = True


def chopped(data: bytes, size: int) -> list[bytes | BaseException]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def outputs_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def pumped(sock: FakeSocket, keep: int = 1 << 20, tail: int = 8192) -> _Stream:
    stream = _Stream(sock, MARK, keep, tail)
    while stream.rc is None and not stream.ended:
        stream.pump(1.0)
    return stream


@pytest.mark.parametrize("piece", [1, 3, 7, 64, 1 << 16])
def test_the_marker_splits_the_tools_stdout_from_its_outputs_wherever_the_pieces_fall(piece: int) -> None:
    tar = outputs_tar({"out.txt": b"hello\n", "other": b"x" * 3000})
    data = (
        frame(1, b"line one\nline tw")
        + frame(2, b"a warning\n")
        + frame(1, b"o\n" + MARK + b" 3\n" + tar[:700])
        + frame(1, tar[700:])
    )
    stream = pumped(FakeSocket(chopped(data, piece)))
    assert stream.rc == 3
    assert stream.stdout_tail() == "line one\nline two\n" and stream.stdout_lines() == 2
    sink = MemorySink()
    limits = ReadLimits(1 << 20, 1 << 20, 10)
    found = read_archive(ChunkReader(stream.outputs(1e12), limits), {"out.txt", "other"}, False, limits, sink)
    assert found == {"out.txt": 6, "other": 3000}
    assert sink.result()["out.txt"] == b"hello\n"
    assert stream.stderr_tail() == "a warning\n"


def test_a_line_that_only_looks_like_the_marker_stays_stdout() -> None:
    data = frame(1, MARK + b" not-a-code\n" + MARK + b"x 1\nreal\n" + MARK + b" 0\n")
    stream = pumped(FakeSocket([data]))
    assert stream.rc == 0
    assert stream.stdout_tail() == (MARK + b" not-a-code\n" + MARK + b"x 1\nreal\n").decode()


def test_a_stream_that_ends_without_the_marker_has_no_exit_code_and_keeps_its_stdout() -> None:
    stream = pumped(FakeSocket([frame(1, b"partial output"), frame(2, b"killed")]))
    assert stream.ended and stream.rc is None
    assert stream.stdout_tail() == "partial output" and stream.stderr_tail() == "killed"


def test_only_the_last_keep_bytes_of_stdout_count_as_a_log_of_that_size_would_keep_them() -> None:
    flood = frame(1, b"flood\n" * 100_000)
    stream = pumped(FakeSocket([flood, flood, frame(1, MARK + b" 0\n")]), keep=6000, tail=12)
    assert stream.stdout_lines() == 1000
    assert stream.stdout_tail() == "flood\nflood\n"


def test_stderr_keeps_only_its_tail() -> None:
    stream = pumped(FakeSocket([frame(2, b"e" * 50_000 + b"END"), frame(1, MARK + b" 0\n")]), tail=10)
    assert stream.stderr_tail() == "eeeeeee" + "END"


def test_a_silent_tool_times_out_the_pump_without_losing_bytes() -> None:
    sock = FakeSocket(
        [frame(1, b"a")[:5], TimeoutError(), frame(1, b"a")[5:], TimeoutError(), frame(1, MARK + b" 0\n")]
    )
    stream = pumped(sock)
    assert stream.rc == 0 and stream.stdout_tail() == "a"


def test_a_broken_connection_before_the_marker_is_an_unavailable_engine() -> None:
    stream = _Stream(FakeSocket([ConnectionResetError("reset")]), MARK, 1 << 20, 100)
    with pytest.raises(DockerUnavailableError, match="attach broke off"):
        stream.pump(1.0)


def test_a_broken_connection_mid_outputs_is_an_output_read_error() -> None:
    stream = pumped(FakeSocket([frame(1, MARK + b" 0\n" + b"\0" * 100), ConnectionResetError("reset")]))
    with pytest.raises(OutputReadError, match="broke off mid-stream"):
        list(stream.outputs(1e12))


def test_outputs_that_stop_coming_hit_the_read_deadline() -> None:
    stream = pumped(FakeSocket([frame(1, MARK + b" 0\n"), TimeoutError()]))
    with pytest.raises(OutputReadTimeoutError):
        list(stream.outputs(0.0))


def test_an_image_streams_only_with_the_exact_label() -> None:
    assert streams({STREAM_LABEL: "stream-v1"})
    assert not streams({}) and not streams({STREAM_LABEL: "stream-v2"})


def test_inline_inputs_are_a_base64_tar_of_the_files_and_their_directories() -> None:
    encoded = inline_inputs({"targets.txt": "127.0.0.1\n", "d/deep.txt": b"x"})
    assert encoded is not None
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(encoded))) as archive:
        members = {m.name: (m.type, m.mode) for m in archive.getmembers()}
        assert archive.extractfile("targets.txt").read() == b"127.0.0.1\n"  # type: ignore[union-attr]
    assert members == {
        "d": (tarfile.DIRTYPE, 0o777),
        "targets.txt": (tarfile.REGTYPE, 0o644),
        "d/deep.txt": (tarfile.REGTYPE, 0o644),
    }
    assert inline_inputs({}) == ""


def test_inputs_over_the_inline_size_are_left_to_the_archive_path() -> None:
    assert inline_inputs({"big": b"x" * (INLINE_INPUT_BYTES - 4096)}) is not None
    assert inline_inputs({"big": b"x" * INLINE_INPUT_BYTES}) is None


def test_inline_inputs_refuse_unsafe_names_before_any_engine_call() -> None:
    with pytest.raises(InvalidFilenameError):
        inline_inputs({"../escape": "x"})


@pytest.mark.parametrize(
    ("text", "size"), [("1m", 1 << 20), ("64k", 64 << 10), ("512", 512), ("2G", 2 << 30), ("1.5m", 3 << 19)]
)
def test_log_sizes_are_read_in_binary_units(text: str, size: int) -> None:
    assert size_bytes(text) == size


def test_a_size_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="not a size"):
        size_bytes("lots")


def test_a_tool_that_ends_every_write_with_the_start_of_the_marker_cannot_grow_what_is_kept() -> None:
    # The tool can read the marker (from /proc/1/environ) and hold a marker line open at the end of every write.
    writes = [frame(1, b"x" * (256 << 10) + MARK + b" ") for _ in range(40)]
    stream = _Stream(FakeSocket(writes), MARK, 64 << 10, 100)
    for _ in range(40):
        stream.pump(1.0)
        assert len(stream._stdout) <= 2 * (64 << 10)
    assert stream.rc is None


def test_an_exit_code_over_255_is_no_marker_line() -> None:
    stream = pumped(FakeSocket([frame(1, MARK + b" 256\n" + MARK + b" 99999999999\n" + MARK + b" 255\n")]))
    assert stream.rc == 255
    assert stream.stdout_tail() == (MARK + b" 256\n" + MARK + b" 99999999999\n").decode()


def test_a_name_twice_in_a_tools_tar_is_refused_before_the_second_copy_is_written() -> None:
    from isolation.errors import UnsafeOutputError

    tar = outputs_tar({"a.json": b"1", "b.json": b"2"})
    twice = outputs_tar({"a.json": b"1"})[:1024] + tar  # a.json, a.json, b.json
    stream = pumped(FakeSocket([frame(1, MARK + b" 0\n" + twice)]))
    sink = MemorySink()
    limits = ReadLimits(1 << 20, 1 << 20, 10)
    with pytest.raises(UnsafeOutputError, match="appears twice"):
        read_archive(ChunkReader(stream.outputs(1e12), limits), {"a.json", "b.json"}, False, limits, sink)
    assert list(sink.result()) == ["a.json"]
