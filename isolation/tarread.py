"""Reading the engine's get_archive streams safely: our own tar header parser, caps, link refusal, one pass.

Nothing of an archive is held whole: headers are parsed one at a time and kept nowhere, and member data
goes to the sink in CHUNK-sized pieces straight from the engine's chunks.
"""

from __future__ import annotations

import io
import re
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

import requests.exceptions
import urllib3.exceptions

from isolation.errors import (
    MissingOutputError,
    OutputReadError,
    OutputReadTimeoutError,
    OutputTooLargeError,
    UnsafeOutputError,
)

CHUNK = 1 << 20

# What a broken download raises: the transport (the daemon closed the stream, a chunk was cut short)
# and tarfile (a truncated or malformed archive). Both are turned into OutputReadError at this boundary.
_TRANSPORT_ERRORS = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError)


_ARCHIVE_ERRORS = (tarfile.TarError,)


@dataclass(frozen=True)
class ReadLimits:
    """Byte caps and a wall-clock deadline for one read from a volume."""

    max_file_bytes: int
    max_total_bytes: int
    timeout_seconds: float


class ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of chunks that enforces a deadline and a byte cap."""

    def __init__(self, chunks: Iterator[bytes], limits: ReadLimits) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")
        self._limits = limits
        self._deadline = time.monotonic() + limits.timeout_seconds
        self.transferred = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._pending:
            self._pending = self.next_chunk()
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def next_chunk(self) -> memoryview:
        """What is left of the current chunk, else the engine's next one, uncopied; empty at the end."""
        if self._pending:
            chunk, self._pending = self._pending, memoryview(b"")
            return chunk
        if time.monotonic() > self._deadline:
            raise OutputReadTimeoutError(
                f"reading outputs took longer than {self._limits.timeout_seconds:g}s; "
                "raise the read timeout or make the tool write less"
            )
        try:
            data = next(self._chunks, b"")
        except _TRANSPORT_ERRORS as exc:
            raise _broken_download(exc) from exc
        self.transferred += len(data)
        # The tar framing adds at most a header and padding per file; allow a little slack for it.
        if self.transferred > self._limits.max_total_bytes + (1 << 20):
            raise OutputTooLargeError(
                f"the archive of the outputs exceeded {self._limits.max_total_bytes} bytes; "
                "raise max_total_bytes or read fewer/smaller files"
            )
        return memoryview(data)


class Sink(Protocol):
    """Where read_archive puts each accepted file's bytes."""

    def open(self, name: str) -> BinaryIO: ...


def _broken_download(exc: Exception) -> OutputReadError:
    if isinstance(exc, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError)) or any(
        isinstance(arg, urllib3.exceptions.TimeoutError) for arg in exc.args
    ):
        return OutputReadTimeoutError(f"the engine stopped sending the archive of the outputs: {exc}")
    return OutputReadError(f"the archive of the outputs broke off mid-stream: {exc}")


class _Blocks:
    """The archive's bytes as exact reads and uncopied runs, straight out of the engine's chunks."""

    def __init__(self, reader: ChunkReader) -> None:
        self._reader = reader
        self._view = memoryview(b"")

    def take(self, size: int) -> memoryview:
        """Up to size bytes (fewer at a chunk's end), uncopied; empty only at the end of the stream."""
        if not self._view:
            self._view = self._reader.next_chunk()
        piece, self._view = self._view[:size], self._view[size:]
        return piece

    def exact(self, size: int) -> bytes:
        """Exactly size bytes; a stream that ends first is a truncated archive."""
        first = self.take(size)
        if len(first) == size:
            return first.tobytes()
        parts = [first]
        missing = size - len(first)
        while missing:
            piece = self.take(missing)
            if not piece:
                raise tarfile.ReadError(f"unexpected end of the archive ({missing} of {size} bytes missing)")
            parts.append(piece)
            missing -= len(piece)
        return b"".join(parts)

    def pieces(self, size: int) -> Iterator[memoryview | bytes]:
        """size bytes as CHUNK-sized pieces counted from the start, joined only where one spans two chunks."""
        while size:
            want = min(size, CHUNK)
            piece = self.take(want)
            if len(piece) < want:
                self._view = piece  # put it back: exact() joins it with the start of the next chunk
                piece = memoryview(self.exact(want))
            size -= want
            yield piece

    def skip(self, size: int) -> None:
        """Discard size bytes without copying them."""
        while size:
            piece = self.take(size)
            if not piece:
                raise tarfile.ReadError(f"unexpected end of the archive ({size} bytes missing)")
            size -= len(piece)

    def expect_end(self) -> None:
        """After the end-of-archive block only zero padding may follow, up to the end of the stream."""
        while piece := self.take(CHUNK):
            if piece.tobytes().count(0) != len(piece):
                raise tarfile.ReadError("data follows the end-of-archive marker")


@dataclass(frozen=True)
class _Entry:
    """One archive member as its header (and any pax or GNU long-name entries before it) describe it."""

    name: str
    kind: bytes
    size: int
    linkname: str

    @property
    def regular(self) -> bool:
        return self.kind in _REGULAR

    @property
    def directory(self) -> bool:
        return self.kind == tarfile.DIRTYPE


# What the engine's archives (Go's archive/tar) are made of; any other type flag is refused as unsafe.
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE)


_HEADER_ONLY = (tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE)


_META = (tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


_MAGICS = (b"ustar\x0000", b"ustar  \x00")  # POSIX ustar (also pax), GNU


# A pax header or GNU long name holds a path (at most 4 KiB on Linux) and a few xattrs; bound what is held.
_META_CAP = 1 << 20


_OCTAL = re.compile(rb"[0-7]*")


def _next_entry(blocks: _Blocks) -> _Entry | None:
    """The next member, with its pax and GNU long-name entries applied; None at the end of the archive."""
    overrides: dict[str, str] = {}
    while True:
        block = blocks.exact(tarfile.BLOCKSIZE)
        if block.count(0) == tarfile.BLOCKSIZE:
            return None
        entry = _parse_header(block)
        if entry.kind not in _META:
            return _apply(entry, overrides)
        if entry.size > _META_CAP:
            raise UnsafeOutputError(f"archive entry {entry.name!r} carries {entry.size} bytes of metadata; refused")
        data = blocks.exact(entry.size)
        blocks.skip(-entry.size % tarfile.BLOCKSIZE)
        overrides.update(_meta_fields(entry.kind, data))


def _parse_header(block: bytes) -> _Entry:
    """One 512-byte ustar or GNU header, checksum verified; v7 and unknown types are refused."""
    if not _checksum_ok(block):
        raise tarfile.ReadError("bad checksum in an archive header")
    if block[257:265] not in _MAGICS:
        raise tarfile.ReadError("an archive header is neither ustar nor GNU")
    name = _text(block[0:100])
    if block[257:265] == _MAGICS[0] and (prefix := _text(block[345:500])):
        name = f"{prefix}/{name}"
    kind = block[156:157]
    if kind == tarfile.AREGTYPE and name.endswith("/"):
        kind = tarfile.DIRTYPE
    if kind not in _REGULAR + _HEADER_ONLY + _META:
        raise UnsafeOutputError(
            f"archive entry {name!r} has tar type {kind!r}, which the engine never writes; nothing was read from it"
        )
    return _Entry(name, kind, _number(block[124:136]), _text(block[157:257]))


def _checksum_ok(block: bytes) -> bool:
    """The stored sum matches the unsigned sum of the header, or the signed one some old tars wrote."""
    stored = _number(block[148:156])
    unsigned = sum(block) - sum(block[148:156]) + 8 * 0x20  # the checksum field counts as spaces
    if stored == unsigned:
        return True
    rest = block[:148] + block[156:]
    high = len(rest) - len(rest.translate(None, bytes(range(0x80))))
    return stored == unsigned - 0x100 * high


def _number(field: bytes) -> int:
    """A numeric header field: NUL/space-terminated octal, or GNU base-256 for large values."""
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    digits = field.split(b"\x00", 1)[0].strip(b" ")
    if not _OCTAL.fullmatch(digits):
        raise tarfile.ReadError(f"invalid number {field!r} in an archive header")
    return int(digits or b"0", 8)


def _text(field: bytes) -> str:
    return field.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _meta_fields(kind: bytes, data: bytes) -> dict[str, str]:
    """What a pax header or GNU long name/link entry says about the member after it."""
    if kind == tarfile.GNUTYPE_LONGNAME:
        return {"path": _text(data)}
    if kind == tarfile.GNUTYPE_LONGLINK:
        return {"linkpath": _text(data)}
    records = _pax_records(data)
    if any(key.startswith("GNU.sparse.") for key in records):
        raise UnsafeOutputError("the archive holds a sparse file, which the engine never writes; refused")
    return {key: records[key] for key in ("path", "linkpath", "size") if key in records}


def _pax_records(data: bytes) -> dict[str, str]:
    """Parse '<length> <key>=<value>\\n' records; any framing error is a malformed archive."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos]:
        space = data.find(b" ", pos)
        length = int(data[pos:space]) if space > pos and data[pos:space].isdigit() else 0
        record = data[space + 1 : pos + length]
        if length <= 0 or pos + length > len(data) or not record.endswith(b"\n") or b"=" not in record:
            raise tarfile.ReadError("malformed pax header in the archive")
        key, _, value = record[:-1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _apply(entry: _Entry, overrides: dict[str, str]) -> _Entry:
    if not overrides:
        return entry
    size = overrides.get("size", "")
    if size and not size.isdigit():
        raise tarfile.ReadError(f"invalid pax size {size!r} in the archive")
    return _Entry(
        overrides.get("path", entry.name),
        entry.kind,
        int(size) if size else entry.size,
        overrides.get("linkpath", entry.linkname),
    )


def read_archive(
    reader: ChunkReader, wanted: set[str], strip_root: bool, limits: ReadLimits, sink: Sink
) -> dict[str, int]:
    """Copy the wanted regular files out of a get_archive stream into sink; return name -> size.

    A truncated or malformed archive raises OutputReadError, never a tarfile error.
    """
    try:
        found, links = _read_members(_Blocks(reader), wanted, strip_root, limits, sink)
    except _ARCHIVE_ERRORS as exc:
        raise OutputReadError(f"the archive of the outputs from the engine is truncated or malformed: {exc}") from exc
    _check_complete(wanted, found, links)
    return found


def _read_members(
    blocks: _Blocks, wanted: set[str], strip_root: bool, limits: ReadLimits, sink: Sink
) -> tuple[dict[str, int], dict[str, str]]:
    """Walk the members one at a time, keeping none: only the found sizes and the links that matter."""
    found: dict[str, int] = {}
    links: dict[str, str] = {}  # only links that stand where a wanted file's parent should be
    parents = {p for name in wanted for p in _parents(name)}
    while (entry := _next_entry(blocks)) is not None:
        rel = _relative_name(entry.name, strip_root)
        if rel is None or (rel in wanted and not entry.regular):
            raise UnsafeOutputError(_unsafe_reason(entry, rel))
        if rel in parents and not entry.regular and not entry.directory:
            links[rel] = _kind(entry)
        if rel not in wanted:
            _skip_data(blocks, entry)
            continue
        if rel in found:  # the engine's archives never hold a name twice; a tool's own tar may
            raise UnsafeOutputError(f"output {rel!r} appears twice in the archive; nothing more was read")
        _check_caps(entry, rel, sum(found.values()), limits)
        found[rel] = _copy_member(blocks, entry, rel, sink)
        if len(found) == len(wanted):
            return found, links
    blocks.expect_end()
    return found, links


def _skip_data(blocks: _Blocks, entry: _Entry) -> None:
    # Like tarfile and Go's reader, link, device, directory and FIFO entries carry no data whatever size says.
    if entry.regular:
        blocks.skip(entry.size + -entry.size % tarfile.BLOCKSIZE)


def _relative_name(raw: str, strip_root: bool) -> str | None:
    """The entry's volume-relative name, or None when it would leave the archived path."""
    if raw.startswith("/"):
        return None
    parts = raw.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    return "/".join(parts[1:] if strip_root else parts)


def _kind(entry: _Entry) -> str:
    if entry.kind == tarfile.SYMTYPE:
        return f"a symlink to {entry.linkname!r}"
    if entry.kind == tarfile.LNKTYPE:
        return f"a hard link to {entry.linkname!r}"
    if entry.kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        return "a device node"
    if entry.kind == tarfile.FIFOTYPE:
        return "a FIFO"
    return "a directory" if entry.directory else "not a regular file"


def _unsafe_reason(entry: _Entry, rel: str | None) -> str:
    if rel is None:
        return f"archive entry {entry.name!r} leaves the requested path; nothing was read from it"
    return f"output {rel!r} is {_kind(entry)}; only regular files are read, links are never followed"


def _check_caps(entry: _Entry, rel: str, total: int, limits: ReadLimits) -> None:
    """Refuse a wanted file over the per-file cap, or one that would take the files read so far over the total."""
    if entry.size > limits.max_file_bytes:
        raise OutputTooLargeError(
            f"output {rel!r} is {entry.size} bytes, over the per-file cap of {limits.max_file_bytes}"
        )
    if total + entry.size > limits.max_total_bytes:
        raise OutputTooLargeError(
            f"outputs add up to more than the per-call cap of {limits.max_total_bytes} bytes at {rel!r}"
        )


def _copy_member(blocks: _Blocks, entry: _Entry, rel: str, sink: Sink) -> int:
    """Stream one wanted file's data into sink, then skip its padding; return its size."""
    with sink.open(rel) as target:
        # Pieces of exactly CHUNK bytes from the file's start: a segmenting sink (the artifact sealer) then
        # takes each whole, without copying it into a buffer of its own.
        for piece in blocks.pieces(entry.size):
            target.write(piece)
    blocks.skip(-entry.size % tarfile.BLOCKSIZE)
    return entry.size


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
