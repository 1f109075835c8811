"""The file store's writer: aligned O_DIRECT blocks with a padded tail cut to size, and its page-cache fallbacks."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import Any

import pytest

from tasks.artifacts import StoreError, filestore
from tasks.artifacts.filestore import FileStore

BLOCK = filestore._BLOCK
SIZES = [0, 1, 4095, 4096, 4097, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 12345]


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def store_and_read(store: FileStore, key: str, data: bytes, piece: int) -> bytes:
    writer = store.create(key)
    for part in pieces(data, piece):
        writer.write(part)
    writer.commit()
    return store.get(key)


@pytest.mark.parametrize("size", SIZES)
def test_objects_of_every_size_around_the_block_and_alignment_come_back_exactly(tmp_path: Path, size: int) -> None:
    store = FileStore(tmp_path)
    data = os.urandom(size)
    # The sealer's pieces: a segment and its tag (1 MiB + 16), never aligned to anything.
    assert store_and_read(store, "a/b.bin", data, (1 << 20) + 16) == data
    assert (tmp_path / "a" / "b.bin").stat().st_size == size
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.bin"]  # no temp file left


def has_o_direct(directory: Path) -> bool:
    try:
        os.close(os.open(directory / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT))
    except OSError:
        return False
    finally:
        (directory / "probe").unlink(missing_ok=True)
    return True


def test_streamed_objects_bypass_the_page_cache_where_the_filesystem_allows(tmp_path: Path) -> None:
    writer = FileStore(tmp_path).create("x.bin")
    try:
        assert bool(fcntl.fcntl(writer._fd, fcntl.F_GETFL) & os.O_DIRECT) == has_o_direct(tmp_path)
    finally:
        writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_a_filesystem_that_refuses_o_direct_at_open_gets_page_cache_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def no_direct(path: Any, flags: int, *args: Any) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(filestore.os, "open", no_direct)
    data = os.urandom(BLOCK + 999)
    assert store_and_read(FileStore(tmp_path), "k", data, 65536) == data


def test_a_filesystem_that_refuses_o_direct_writes_gets_page_cache_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    refused = []

    def no_direct_write(fd: int, data: Any) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(filestore.os, "write", no_direct_write)
    data = os.urandom(2 * BLOCK + 5)
    assert store_and_read(FileStore(tmp_path), "k", data, 1 << 20) == data
    # Refused once, then the descriptor writes through the page cache (none where it never had O_DIRECT).
    assert len(refused) == (1 if has_o_direct(tmp_path) else 0)


def test_a_failed_write_is_raised_as_a_store_error_and_aborting_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(filestore.os, "write", full)
    writer = FileStore(tmp_path).create("k")
    with pytest.raises(StoreError, match="No space left"):
        for _ in range(8):
            writer.write(os.urandom(BLOCK))
        writer.commit()
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_commit_that_fails_late_closes_its_descriptor_once_and_a_second_commit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(src: Any, dst: Any) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    before = open_fds()
    writer = FileStore(tmp_path / "s").create("k")
    writer.write(b"x" * 5000)
    monkeypatch.setattr(filestore.os, "replace", refuse)
    with pytest.raises(StoreError, match="cross-device"):
        writer.commit()
    # The failed commit's descriptor number is free again and may now be someone else's file.
    with open(tmp_path / "precious", "wb") as precious:
        precious.write(b"keep me")
        precious.flush()
        with pytest.raises(StoreError, match="already committed or aborted"):
            writer.commit()
        writer.abort()
        os.fstat(precious.fileno())  # still open: neither call closed or truncated it
    assert (tmp_path / "precious").read_bytes() == b"keep me"
    assert open_fds() == before
    assert list((tmp_path / "s").iterdir()) == []


def test_a_small_put_that_fails_leaves_no_temp_file_and_no_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(src: Any, dst: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    store = FileStore(tmp_path)
    store.put("index/a.json", b"{}")
    before = open_fds()
    monkeypatch.setattr(filestore.os, "replace", full)
    with pytest.raises(StoreError, match="No space left"):
        store.put("index/b.json", b"{}")
    assert open_fds() == before
    assert [p.name for p in (tmp_path / "index").iterdir()] == ["a.json"]


def test_a_writer_that_cannot_start_its_thread_leaves_no_temp_file_and_no_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_thread(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("can't start new thread")

    before = open_fds()
    monkeypatch.setattr(filestore, "WriteBehind", no_thread)
    with pytest.raises(RuntimeError, match="new thread"):
        FileStore(tmp_path).create("a/k")
    assert open_fds() == before
    assert list((tmp_path / "a").iterdir()) == []


def test_a_store_told_not_to_bypass_the_page_cache_does_not(tmp_path: Path) -> None:
    writer = FileStore(tmp_path, direct=False).create("k")
    try:
        assert not fcntl.fcntl(writer._fd, fcntl.F_GETFL) & os.O_DIRECT
        writer.write(b"abc")
        writer.commit()
    finally:
        writer.abort()
    assert (tmp_path / "k").read_bytes() == b"abc"


def test_every_directory_an_object_needs_is_private_to_the_worker(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store", direct=False)
    store.put("tenants/acme/runs/r1/outputs/out.txt", b"secret")
    directories = [p for p in (tmp_path / "store").rglob("*") if p.is_dir()]
    assert len(directories) == 5
    assert {oct(p.stat().st_mode & 0o777) for p in directories} == {"0o700"}, "tenant and run ids stay unlisted"
