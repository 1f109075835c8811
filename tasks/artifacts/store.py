"""The object-store seam: a Protocol both stores implement, and the choice of store by URL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Protocol
from urllib.parse import urlsplit

from tasks.artifacts.errors import ArtifactConfigError

DEFAULT_PART_SIZE = 8 << 20


@dataclass(frozen=True)
class S3Options:
    """How to reach an S3-compatible service; None means the usual AWS variables and files decide."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    part_size: int = DEFAULT_PART_SIZE


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key (relative to the store's root), size and last modification."""

    key: str
    size: int
    modified: datetime


class ObjectWriter(Protocol):
    """A new object being written: nothing is visible under its key until commit()."""

    def write(self, data: bytes) -> None:
        """Append bytes (immutable: a store may write them a moment later, from another thread)."""
        ...

    def commit(self) -> None:
        """Publish the object under its key."""
        ...

    def abort(self) -> None:
        """Drop everything written; never raises."""
        ...


class ObjectStore(Protocol):
    """Keys to bytes, listed by prefix; the artifact layer needs nothing more of a store."""

    @property
    def base_uri(self) -> str:
        """The URI of the store's root, ending with '/'."""
        ...

    def create(self, key: str) -> ObjectWriter:
        """Start writing a new object."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A readable stream of an object; ArtifactNotFoundError when absent."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Write a small object in one go."""
        ...

    def get(self, key: str) -> bytes:
        """Read a small object in one go; ArtifactNotFoundError when absent."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with prefix."""
        ...

    def delete(self, keys: Iterable[str]) -> int:
        """Delete objects (absent ones are fine); return how many were asked for."""
        ...


def open_store(url: str, s3: S3Options | None = None) -> ObjectStore:
    """The store a URL names: `file:///absolute/path` or `s3://bucket[/prefix]`."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        from tasks.artifacts.filestore import FileStore

        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ArtifactConfigError(f"a file store URL needs an absolute path (file:///srv/artifacts), got {url!r}")
        return FileStore(parts.path)
    if parts.scheme == "s3":
        from tasks.artifacts.s3store import S3Store

        if not parts.netloc or parts.query or parts.fragment:
            raise ArtifactConfigError(f"an S3 store URL is s3://bucket[/prefix], got {url!r}")
        return S3Store(parts.netloc, parts.path.strip("/"), s3 or S3Options())
    raise ArtifactConfigError(f"unknown artifact store {url!r}: use file:///path or s3://bucket/prefix")
