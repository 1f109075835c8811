"""The embedded store: objects are files under one directory, published by an atomic rename.

A streamed object is written with O_DIRECT, past the page cache: an artifact is written once and read rarely, so
caching it only evicts what the machine does use, and on the virtual machines measured here filling fresh page
cache cost more CPU than the encryption (bench.artifacts, encrypted export, medians over the same rounds:
0.48x -> 0.64x and 0.61x -> 0.73x the floor).
Where the filesystem refuses O_DIRECT the same writer writes through the page cache; so do small objects (put).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from tasks.artifacts.background import WriteBehind
from tasks.artifacts.errors import ArtifactNotFoundError, StoreError
from tasks.artifacts.store import ObjectInfo

_TEMP_MARK = ".part-"
_DIR_MODE = 0o700
_FILE_MODE = 0o600
_BLOCK = 4 << 20  # bytes per write: a multiple of every alignment O_DIRECT asks for (512 or 4096 bytes)
_ALIGN = 4096
_WRITE_DEPTH = 2  # full blocks queued behind the producer: at most depth + 2 blocks (16 MiB) per object


class FileStore:
    """Objects as files under root; a key's '/' are directories; writes land under a temp name first."""

    def __init__(self, root: str | os.PathLike[str], *, direct: bool = True) -> None:
        self.root = Path(root).resolve()
        self._direct = direct  # False: streamed objects go through the page cache too (bench.artifacts compares)

    def __repr__(self) -> str:
        return f"<FileStore {self.root}>"

    @property
    def base_uri(self) -> str:
        """file:///root/."""
        return self.root.as_uri().rstrip("/") + "/"

    def create(self, key: str) -> _FileWriter:
        """A writer to a hidden temp file beside the object, renamed into place on commit."""
        path = self._path(key)
        with _store_errors(key):
            temp = _temp_beside(path)
            fd = _open_new(temp, self._direct)
            try:
                return _FileWriter(fd, temp, path)
            except BaseException:  # no memory or no thread for it: leave nothing behind
                os.close(fd)
                temp.unlink()
                raise

    def open(self, key: str) -> BinaryIO:
        """The object's file, opened for reading."""
        try:
            fd = os.open(self._path(key), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise ArtifactNotFoundError(f"no object {key!r} in {self.base_uri}") from exc
        except OSError as exc:
            raise StoreError(f"cannot open {key!r} in {self.base_uri}: {exc}") from exc
        return os.fdopen(fd, "rb")

    def put(self, key: str, data: bytes) -> None:
        """Write a small object atomically, through the page cache (an index is read back soon)."""
        path = self._path(key)
        with _store_errors(key):
            temp = _temp_beside(path)
            try:
                with os.fdopen(_open_new(temp, direct=False), "wb") as fh:
                    fh.write(data)
                os.replace(temp, path)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise

    def get(self, key: str) -> bytes:
        """Read a small object."""
        with self.open(key) as fh:
            return fh.read()

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every file whose key starts with prefix, temp files of unfinished writes included."""
        top = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        for directory, _dirs, files in os.walk(top):
            for name in files:
                path = Path(directory, name)
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    info = _info(path, key)
                except FileNotFoundError:  # removed since the walk saw it
                    continue
                yield info

    def delete(self, keys: Iterable[str]) -> int:
        """Remove files, then the directories they leave empty."""
        count = 0
        for key in keys:
            path = self._path(key)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self._prune(path.parent)
            count += 1
        return count

    def _prune(self, directory: Path) -> None:
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:  # not empty (or already gone): stop climbing
                return
            directory = directory.parent

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or "\x00" in key:
            raise StoreError(f"refused object key {key!r}")
        return self.root.joinpath(*parts)


class _FileWriter:
    """One object being written to its temp file in page-aligned blocks by a write-behind thread."""

    def __init__(self, fd: int, temp: Path, final: Path) -> None:
        self._fd, self._temp, self._final = fd, temp, final
        self._spare: list[mmap.mmap] = []  # blocks the thread has written, for the producer to fill again
        self._block, self._filled, self._size = mmap.mmap(-1, _BLOCK), 0, 0
        self._behind: WriteBehind[tuple[mmap.mmap, int]] = WriteBehind(
            self._write, _WRITE_DEPTH, "artifact-file-writer"
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        with _store_errors(self._final.name):
            while view:
                n = min(len(view), _BLOCK - self._filled)
                self._block[self._filled : self._filled + n] = view[:n]
                self._filled += n
                view = view[n:]
                if self._filled == _BLOCK:
                    self._behind.put((self._block, _BLOCK))
                    self._size += _BLOCK
                    self._block, self._filled = self._spare.pop() if self._spare else mmap.mmap(-1, _BLOCK), 0

    def commit(self) -> None:
        # No fsync: a crash can lose a fresh artifact, and a torn one fails authentication when read.
        if self._fd < 0:
            raise StoreError(f"{self._final.name!r} was already committed or aborted")
        with _store_errors(self._final.name):
            if self._filled:
                # O_DIRECT writes whole aligned blocks: the tail goes out zero-padded, then the file is cut to size.
                padded = -(-self._filled // _ALIGN) * _ALIGN
                self._block[self._filled : padded] = bytes(padded - self._filled)
                self._behind.put((self._block, padded))
            self._behind.finish()
            self._release()
            fd, self._fd = self._fd, -1  # closed once, whatever fails next: the number may soon be another file's
            try:
                os.ftruncate(fd, self._size + self._filled)
            finally:
                os.close(fd)
            os.replace(self._temp, self._final)

    def abort(self) -> None:
        self._behind.cancel()
        self._release()
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            self._temp.unlink()

    def _release(self) -> None:
        # Unmapped now, not when the collector finds this writer: it and its thread's queue refer to each other.
        for block in (self._block, *self._spare):
            block.close()
        self._spare.clear()

    def _write(self, item: tuple[mmap.mmap, int]) -> None:
        block, length = item
        view = memoryview(block)[:length]
        while view:
            view = view[_write_some(self._fd, view) :]
        self._spare.append(block)


def _temp_beside(path: Path) -> Path:
    """A hidden, unique temp name in path's directory (created if need be), renamed onto path when complete."""
    make_private_dirs(path.parent)
    return path.with_name(f".{path.name}{_TEMP_MARK}{secrets.token_hex(6)}")


def make_private_dirs(directory: Path) -> None:
    """Create directory and each missing parent 0700: `mkdir(parents=True)` makes the parents 0755 (umask),
    which would let any local user list tenant and run ids."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for each in reversed(missing):
        try:
            each.mkdir(mode=_DIR_MODE)
        except FileExistsError:  # another writer made it a moment ago
            continue


def _open_new(path: Path, direct: bool) -> int:
    """Create path for writing; with direct, O_DIRECT where the filesystem allows it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    if direct:
        try:
            return os.open(path, flags | os.O_DIRECT, _FILE_MODE)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # EINVAL: this filesystem has no O_DIRECT
                raise
    return os.open(path, flags, _FILE_MODE)


def _write_some(fd: int, view: memoryview) -> int:
    """os.write, falling back to the page cache for good if the filesystem took O_DIRECT at open but refuses it now."""
    try:
        return os.write(fd, view)
    except OSError as exc:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        if exc.errno != errno.EINVAL or not flags & os.O_DIRECT:
            raise
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)
        return os.write(fd, view)


def _info(path: Path, key: str) -> ObjectInfo:
    stat = path.stat()
    return ObjectInfo(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))


@contextlib.contextmanager
def _store_errors(what: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise StoreError(f"the file store failed on {what!r}: {exc}") from exc
