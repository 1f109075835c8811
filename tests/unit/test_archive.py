"""Tar streams: what initialize uploads and how read_files refuses unsafe archives (no Docker)."""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from isolation.archive import DirectorySink, MemorySink, archive_request, prepare_inputs, tar_stream
from isolation.errors import (
    InvalidFilenameError,
    MissingOutputError,
    OutputReadTimeoutError,
    OutputTooLargeError,
    UnsafeOutputError,
)
from isolation.tarread import ChunkReader, ReadLimits, read_archive
from tests.unit.helpers import make_tar, read, special


def upload(files: dict[str, object]) -> tarfile.TarFile:
    """Build the upload stream for files and open it as a tar archive."""
    data = b"".join(tar_stream(prepare_inputs(files)))  # type: ignore[arg-type]
    return tarfile.open(fileobj=io.BytesIO(data))


def test_the_upload_holds_every_file_with_exact_bytes_and_fixed_modes() -> None:
    archive = upload({"a.bin": bytes(range(256)), "cfg/x/y.yaml": "k: ü"})
    members = {m.name: m for m in archive.getmembers()}
    assert sorted(members) == ["a.bin", "cfg", "cfg/x", "cfg/x/y.yaml"]
    assert archive.extractfile("a.bin").read() == bytes(range(256))  # type: ignore[union-attr]
    assert archive.extractfile("cfg/x/y.yaml").read() == "k: ü".encode()  # type: ignore[union-attr]
    assert members["cfg"].isdir() and members["cfg"].mode == 0o777
    assert members["a.bin"].mode == 0o644 and members["a.bin"].uid == 0


def test_directories_come_before_the_files_inside_them() -> None:
    names = [m.name for m in upload({"z/a": "1", "a/b/c": "2"}).getmembers()]
    assert names.index("a") < names.index("a/b") < names.index("a/b/c")
    assert names.index("z") < names.index("z/a")


def test_long_and_unicode_names_survive_the_upload() -> None:
    name = "/".join(["ü" * 100] * 3)
    assert upload({name: "x"}).getnames()[-1] == name


def test_a_path_input_is_streamed_in_chunks_not_read_whole(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as fh:
        fh.truncate(5 << 20)
    (item,) = prepare_inputs({"big": big})
    chunks = list(item.chunks())
    assert item.size == 5 << 20
    assert max(len(c) for c in chunks) <= 1 << 20


def test_a_path_that_shrinks_during_upload_fails_loudly(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    (item,) = prepare_inputs({"f": path})
    path.write_bytes(b"x")
    with pytest.raises(OSError, match="shrank"):
        list(item.chunks())


def test_a_text_mode_file_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("x")
    with open(path) as text, pytest.raises(InvalidFilenameError, match="binary mode"):
        prepare_inputs({"t.txt": text})  # type: ignore[dict-item]


def test_content_of_an_unsupported_type_is_refused() -> None:
    with pytest.raises(InvalidFilenameError, match="must be str, bytes"):
        prepare_inputs({"a": 42})  # type: ignore[dict-item]


def test_wanted_regular_files_are_read_and_others_skipped() -> None:
    data = make_tar(special("data", tarfile.DIRTYPE), ("data/a", b"A"), ("data/b", b"B"), ("data/c/d", b"D"))
    assert read(data, {"a", "c/d"}) == {"a": b"A", "c/d": b"D"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (special("data/out", tarfile.SYMTYPE, "/etc/passwd"), "symlink"),
        (special("data/out", tarfile.LNKTYPE, "data/a"), "hard link"),
        (special("data/out", tarfile.CHRTYPE), "device"),
        (special("data/out", tarfile.BLKTYPE), "device"),
        (special("data/out", tarfile.FIFOTYPE), "FIFO"),
        (special("data/out", tarfile.DIRTYPE), "directory"),
    ],
)
def test_a_wanted_name_that_is_not_a_regular_file_is_refused(entry: tarfile.TarInfo, message: str) -> None:
    with pytest.raises(UnsafeOutputError, match=message):
        read(make_tar(("data/a", b"A"), entry), {"out"})


@pytest.mark.parametrize("name", ["data/../etc/passwd", "/etc/passwd", "data/./x", "data//x", "../x"])
def test_an_entry_that_leaves_the_requested_path_is_refused(name: str) -> None:
    with pytest.raises(UnsafeOutputError, match="leaves the requested path"):
        read(make_tar((name, b"x")), {"x"})


def test_a_wanted_file_under_a_symlinked_directory_is_refused_not_missing() -> None:
    data = make_tar(special("sub", tarfile.SYMTYPE, "/etc"))
    with pytest.raises(UnsafeOutputError, match="lies under 'sub'"):
        read(data, {"sub/passwd"}, strip_root=False)


def test_unwanted_links_are_ignored() -> None:
    data = make_tar(special("data/link", tarfile.SYMTYPE, "/etc/passwd"), ("data/a", b"A"))
    assert read(data, {"a"}) == {"a": b"A"}


def test_missing_files_are_all_named() -> None:
    with pytest.raises(MissingOutputError) as caught:
        read(make_tar(("data/a", b"A")), {"a", "b", "c/d"})
    assert caught.value.missing == ["b", "c/d"]


def test_a_file_over_the_per_file_cap_is_refused_before_its_bytes_are_read() -> None:
    limits = ReadLimits(max_file_bytes=10, max_total_bytes=1 << 20, timeout_seconds=30)
    with pytest.raises(OutputTooLargeError, match="per-file cap of 10"):
        read(make_tar(("data/a", b"x" * 11)), {"a"}, limits=limits)


def test_files_over_the_per_call_cap_are_refused() -> None:
    limits = ReadLimits(max_file_bytes=100, max_total_bytes=150, timeout_seconds=30)
    with pytest.raises(OutputTooLargeError, match="per-call cap of 150"):
        read(make_tar(("data/a", b"x" * 100), ("data/b", b"y" * 100)), {"a", "b"}, limits=limits)


def test_an_archive_larger_than_the_per_call_cap_stops_the_transfer() -> None:
    limits = ReadLimits(max_file_bytes=1 << 30, max_total_bytes=1 << 20, timeout_seconds=30)
    endless = iter(lambda: b"\0" * 65536, None)
    reader = ChunkReader(endless, limits)
    with pytest.raises(OutputTooLargeError, match="exceeded"):
        while reader.read(65536):
            pass
    assert reader.transferred <= (2 << 20) + 65536


def test_a_stalled_archive_hits_its_deadline() -> None:
    limits = ReadLimits(max_file_bytes=1 << 20, max_total_bytes=1 << 20, timeout_seconds=0.05)

    def slow() -> Iterator[bytes]:
        while True:
            time.sleep(0.03)
            yield b"\0" * 512

    with pytest.raises(OutputReadTimeoutError, match="took longer"):
        read_archive(ChunkReader(slow(), limits), {"a"}, True, limits, MemorySink())


def test_a_directory_sink_never_overwrites_or_follows_links(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("precious")
    os.symlink(tmp_path / "target", tmp_path / "link")
    sink = DirectorySink(tmp_path)
    with pytest.raises(FileExistsError):
        sink.open("link")
    assert (tmp_path / "target").read_text() == "precious"


@pytest.mark.parametrize(
    ("names", "expected"),
    [(["a.json"], ("a.json", False)), (["d/a", "d/b/c"], ("d", False)), (["a", "d/b"], ("", True))],
)
def test_archive_request_reads_one_top_level_entry_directly(names: list[str], expected: tuple[str, bool]) -> None:
    assert archive_request(names) == expected
