"""Building tar streams for put_archive from input files, and the sinks that receive what is read back."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, BinaryIO, Union

from isolation.errors import (
    InvalidFilenameError,
)
from isolation.naming import validate_filenames
from isolation.tarread import CHUNK

FILE_MODE = 0o644
# Directories are world-writable so a tool running as any non-root uid can create its outputs.
DIR_MODE = 0o777

Content = Union[str, bytes, bytearray, memoryview, "os.PathLike[str]", IO[bytes]]


@dataclass(frozen=True)
class InputFile:
    """One file to upload: its volume-relative name, exact size and a way to stream its bytes."""

    name: str
    size: int
    chunks: Callable[[], Iterator[bytes]]
    release: Callable[[], None] = field(default=lambda: None)


def prepare_inputs(files: Mapping[str, Content]) -> list[InputFile]:
    """Validate names and turn every content kind into a sized chunk stream, before any Docker call."""
    names = validate_filenames(files.keys())
    return [_as_input(name, files[name]) for name in names]


def _as_input(name: str, content: Content) -> InputFile:
    if isinstance(content, str):
        content = content.encode("utf-8")
    if isinstance(content, (bytes, bytearray, memoryview)):
        data = bytes(content)
        return InputFile(name, len(data), lambda: iter((data,)))
    if isinstance(content, os.PathLike):
        path = os.fspath(content)
        size = os.stat(path).st_size
        # The tar header already promised `size` bytes: stream exactly that many, or fail if the file shrank.
        return InputFile(name, size, lambda: _file_chunks(path, size))
    if hasattr(content, "read"):
        return _stream_input(name, content)
    raise InvalidFilenameError(
        f"content of {name!r} must be str, bytes, os.PathLike or a binary file object, got {type(content).__name__}"
    )


def _stream_input(name: str, stream: IO[bytes]) -> InputFile:
    stream, release = _seekable(stream)
    start = stream.tell()
    size = stream.seek(0, os.SEEK_END) - start
    stream.seek(start)
    if not isinstance(stream.read(0), bytes):
        raise InvalidFilenameError(f"file object for {name!r} must be opened in binary mode")

    def chunks() -> Iterator[bytes]:
        stream.seek(start)
        yield from _exact_chunks(stream.read, size, name)

    return InputFile(name, size, chunks, release)


def _seekable(stream: IO[bytes]) -> tuple[IO[bytes], Callable[[], None]]:
    """The stream itself when seekable; else a spooled copy (memory up to 8 MiB, then disk) and its closer."""
    if getattr(stream, "seekable", lambda: False)():
        return stream, _nothing
    # A tar header needs the size up front, and a pipe cannot tell it without being read.
    spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - closed by InputFile.release
    _copy(stream, spool)
    spool.seek(0)
    return spool, spool.close


def _nothing() -> None:
    return None


def _copy(src: IO[bytes], dst: IO[bytes]) -> None:
    while block := src.read(CHUNK):
        dst.write(block)


def _file_chunks(path: str, size: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        yield from _exact_chunks(fh.read, size, path)


def _exact_chunks(read: Callable[[int], bytes], size: int, what: str) -> Iterator[bytes]:
    left = size
    while left:
        block = read(min(CHUNK, left))
        if not block:
            raise OSError(f"{what} shrank while it was being uploaded")
        left -= len(block)
        yield block


def tar_stream(files: Iterable[InputFile], uid: int = 0, gid: int = 0) -> Iterator[bytes]:
    """Yield a tar archive of the files (and their parent directories) chunk by chunk."""
    files = list(files)
    stamp = _Stamp(uid, gid, int(time.time()))
    for directory in _parent_dirs(f.name for f in files):
        yield stamp.header(directory, tarfile.DIRTYPE, 0, DIR_MODE)
    for item in files:
        yield stamp.header(item.name, tarfile.REGTYPE, item.size, FILE_MODE)
        yield from item.chunks()
        if item.size % tarfile.BLOCKSIZE:
            yield tarfile.NUL * (tarfile.BLOCKSIZE - item.size % tarfile.BLOCKSIZE)
    yield tarfile.NUL * (2 * tarfile.BLOCKSIZE)


def _parent_dirs(names: Iterable[str]) -> list[str]:
    dirs = {"/".join(n.split("/")[:i]) for n in names for i in range(1, n.count("/") + 1)}
    return sorted(dirs, key=lambda d: (d.count("/"), d))


@dataclass(frozen=True)
class _Stamp:
    """The owner and modification time every entry of one archive carries."""

    uid: int
    gid: int
    mtime: int

    def header(self, name: str, kind: bytes, size: int, mode: int) -> bytes:
        info = tarfile.TarInfo(name)
        info.type, info.size, info.mode = kind, size, mode
        info.uid, info.gid, info.mtime = self.uid, self.gid, self.mtime
        return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


class MemorySink:
    """Collects each file's bytes in memory."""

    def __init__(self) -> None:
        self.files: dict[str, io.BytesIO] = {}

    def open(self, name: str) -> BinaryIO:
        buffer = self.files[name] = _KeepOpenBytesIO()
        return buffer

    def result(self) -> dict[str, bytes]:
        return {name: buf.getvalue() for name, buf in self.files.items()}


class _KeepOpenBytesIO(io.BytesIO):
    def close(self) -> None:  # keep the bytes readable after the `with` block
        pass


class DirectorySink:
    """Writes each file under a local directory, refusing to follow or overwrite anything there."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)
        os.makedirs(self.root, exist_ok=True)

    def open(self, name: str) -> BinaryIO:
        path = os.path.join(self.root, *name.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        return os.fdopen(os.open(path, flags, 0o600), "wb")


def archive_request(names: Iterable[str]) -> tuple[str, bool]:
    """The volume-relative path to archive for these names, and whether to strip the archive's root.

    One top-level entry is archived directly, so a symlink there arrives as a link entry instead of
    being resolved by the engine; names under several top-level entries need the volume root.
    """
    tops = {n.split("/")[0] for n in names}
    if len(tops) == 1:
        return tops.pop(), False
    return "", True
