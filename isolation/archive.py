"""Building tar streams for put_archive and reading get_archive streams safely, never whole in memory."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, BinaryIO, Protocol, Union

import requests.exceptions
import urllib3.exceptions

from isolation.errors import (
    InvalidFilenameError,
    MissingOutputError,
    OutputReadError,
    OutputReadTimeoutError,
    OutputTooLargeError,
    UnsafeOutputError,
)
from isolation.naming import validate_filenames

CHUNK = 1 << 20
# What a broken download raises: the transport (the daemon closed the stream, a chunk was cut short)
# and tarfile (a truncated or malformed archive). Both are turned into OutputReadError at this boundary.
_TRANSPORT_ERRORS = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError)
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError)
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


@dataclass(frozen=True)
class ReadLimits:
    """Byte caps and a wall-clock deadline for one read from a volume."""

    max_file_bytes: int
    max_total_bytes: int
    timeout_seconds: float


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
    now = int(time.time())
    for directory in _parent_dirs(f.name for f in files):
        yield _header(directory, tarfile.DIRTYPE, 0, DIR_MODE, uid, gid, now)
    for item in files:
        yield _header(item.name, tarfile.REGTYPE, item.size, FILE_MODE, uid, gid, now)
        yield from item.chunks()
        if item.size % tarfile.BLOCKSIZE:
            yield tarfile.NUL * (tarfile.BLOCKSIZE - item.size % tarfile.BLOCKSIZE)
    yield tarfile.NUL * (2 * tarfile.BLOCKSIZE)


def _parent_dirs(names: Iterable[str]) -> list[str]:
    dirs = {"/".join(n.split("/")[:i]) for n in names for i in range(1, n.count("/") + 1)}
    return sorted(dirs, key=lambda d: (d.count("/"), d))


def _header(name: str, kind: bytes, size: int, mode: int, uid: int, gid: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.uid, info.gid, info.mtime = kind, size, mode, uid, gid, mtime
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


class ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of chunks that enforces a deadline and a byte cap."""

    def __init__(self, chunks: Iterator[bytes], limits: ReadLimits) -> None:
        self._chunks = chunks
        self._pending = b""
        self._limits = limits
        self._deadline = time.monotonic() + limits.timeout_seconds
        self.transferred = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._pending:
            self._pending = self._next_chunk()
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _next_chunk(self) -> bytes:
        if time.monotonic() > self._deadline:
            raise OutputReadTimeoutError(
                f"reading outputs took longer than {self._limits.timeout_seconds:g}s; "
                "raise the read timeout or make the tool write less"
            )
        try:
            chunk = next(self._chunks, b"")
        except _TRANSPORT_ERRORS as exc:
            raise _broken_download(exc) from exc
        self.transferred += len(chunk)
        # The tar framing adds at most a header and padding per file; allow a little slack for it.
        if self.transferred > self._limits.max_total_bytes + (1 << 20):
            raise OutputTooLargeError(
                f"the archive of the outputs exceeded {self._limits.max_total_bytes} bytes; "
                "raise max_total_bytes or read fewer/smaller files"
            )
        return chunk


class Sink(Protocol):
    """Where read_archive puts each accepted file's bytes."""

    def open(self, name: str) -> BinaryIO: ...


def _broken_download(exc: Exception) -> OutputReadError:
    if isinstance(exc, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError)) or any(
        isinstance(arg, urllib3.exceptions.TimeoutError) for arg in exc.args
    ):
        return OutputReadTimeoutError(f"the engine stopped sending the archive of the outputs: {exc}")
    return OutputReadError(f"the archive of the outputs broke off mid-stream: {exc}")


def read_archive(
    reader: ChunkReader, wanted: set[str], strip_root: bool, limits: ReadLimits, sink: Sink
) -> dict[str, int]:
    """Copy the wanted regular files out of a get_archive stream into sink; return name -> size.

    A truncated or malformed archive raises OutputReadError, never a tarfile error.
    """
    try:
        found, links = _read_members(reader, wanted, strip_root, limits, sink)
    except _ARCHIVE_ERRORS as exc:
        raise OutputReadError(f"the archive of the outputs from the engine is truncated or malformed: {exc}") from exc
    _check_complete(wanted, found, links)
    return found


def _members(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Each header once, keeping none: TarFile.members would hold every one (500k entries: +266 MiB)."""
    while (member := archive.next()) is not None:
        archive.members.clear()  # type: ignore[attr-defined]  # a real attribute typeshed omits
        yield member


def _read_members(
    reader: ChunkReader, wanted: set[str], strip_root: bool, limits: ReadLimits, sink: Sink
) -> tuple[dict[str, int], dict[str, str]]:
    found: dict[str, int] = {}
    links: dict[str, str] = {}  # only links that stand where a wanted file's parent should be
    parents = {p for name in wanted for p in _parents(name)}
    with tarfile.open(fileobj=io.BufferedReader(reader, CHUNK), mode="r|") as archive:
        for member in _members(archive):
            rel = _relative_name(member.name, strip_root)
            if rel is None or (rel in wanted and not member.isreg()):
                raise UnsafeOutputError(_unsafe_reason(member, rel))
            if rel in parents and not member.isreg() and not member.isdir():
                links[rel] = _kind(member)
            if rel in wanted:
                found[rel] = _copy_member(archive, member, rel, sum(found.values()), limits, sink)
                if len(found) == len(wanted):
                    break
    return found, links


def _relative_name(raw: str, strip_root: bool) -> str | None:
    """The entry's volume-relative name, or None when it would leave the archived path."""
    if raw.startswith("/"):
        return None
    parts = raw.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    return "/".join(parts[1:] if strip_root else parts)


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"a symlink to {member.linkname!r}"
    if member.islnk():
        return f"a hard link to {member.linkname!r}"
    if member.ischr() or member.isblk():
        return "a device node"
    if member.isfifo():
        return "a FIFO"
    return "a directory" if member.isdir() else "not a regular file"


def _unsafe_reason(member: tarfile.TarInfo, rel: str | None) -> str:
    if rel is None:
        return f"archive entry {member.name!r} leaves the requested path; nothing was read from it"
    return f"output {rel!r} is {_kind(member)}; only regular files are read, links are never followed"


def _copy_member(
    archive: tarfile.TarFile, member: tarfile.TarInfo, rel: str, total: int, limits: ReadLimits, sink: Sink
) -> int:
    if member.size > limits.max_file_bytes:
        raise OutputTooLargeError(
            f"output {rel!r} is {member.size} bytes, over the per-file cap of {limits.max_file_bytes}"
        )
    if total + member.size > limits.max_total_bytes:
        raise OutputTooLargeError(
            f"outputs add up to more than the per-call cap of {limits.max_total_bytes} bytes at {rel!r}"
        )
    source = archive.extractfile(member)
    assert source is not None  # a regular file always has a reader
    with sink.open(rel) as target:
        while block := source.read(CHUNK):
            target.write(block)
    return member.size


def _parents(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _check_complete(wanted: set[str], found: dict[str, int], links: dict[str, str]) -> None:
    missing = wanted - found.keys()
    for name in sorted(missing):
        for parent in _parents(name):
            if parent in links:
                raise UnsafeOutputError(
                    f"output {name!r} lies under {parent!r}, which is {links[parent]}; links are never followed"
                )
    if missing:
        raise MissingOutputError(sorted(missing))


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
