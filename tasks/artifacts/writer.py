"""Writing a task's artifacts as bytes arrive: hash, encrypt and upload on the way, nothing held whole."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, BinaryIO, Protocol, cast

from tasks.artifacts.crypto import SEGMENT_SIZE, Sealer
from tasks.artifacts.errors import ArtifactExistsError, ArtifactTooLargeError
from tasks.artifacts.index import ArtifactRecord, TaskIndex, write_index
from tasks.artifacts.keys import KeyProvider
from tasks.artifacts.store import ObjectStore, ObjectWriter

logger = logging.getLogger(__name__)

FINDINGS_NAME = "findings.jsonl"
DEFAULT_MAX_ARTIFACT_BYTES = 10 << 30


@dataclass(frozen=True)
class ArtifactLimits:
    """How each artifact is written: the cap on its plaintext bytes and the size of its sealed segments."""

    max_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES
    segment_size: int = SEGMENT_SIZE


class TaskArtifacts:
    """One task's artifacts; an `isolation.archive.Sink` whose open(name) streams one file into the store."""

    def __init__(self, store: ObjectStore, keys: KeyProvider, index: TaskIndex, limits: ArtifactLimits) -> None:
        self._store, self._keys, self._index, self._limits = store, keys, index, limits
        self._names: set[str] = set()

    @property
    def records(self) -> list[ArtifactRecord]:
        """The artifacts stored so far, in order."""
        return list(self._index.artifacts)

    def open(self, name: str) -> BinaryIO:
        """A writable stream for artifact `name`; it is published when closed, dropped if `with` exits on error."""
        return cast(BinaryIO, self._writer(name))

    def findings(self, name: str = FINDINGS_NAME) -> FindingsWriter:
        """A writer of one JSON line per finding."""
        return FindingsWriter(self._writer(name))

    def _writer(self, name: str) -> ArtifactWriter:
        location = self._index.location
        key = location.key(name)
        if name in self._names:
            raise ArtifactExistsError(f"task {location.task_id} already has an artifact {name!r}")
        self._names.add(name)
        target = self._store.create(key)
        try:
            sealer = Sealer(self._keys, location.tenant, key, target.write, self._limits.segment_size)
        except BaseException:
            target.abort()
            raise
        sealed = SealedObject(target, sealer)
        return ArtifactWriter(name, self._store.base_uri + key, sealed, self._limits.max_bytes, self._stored)

    def _stored(self, record: ArtifactRecord) -> None:
        # Rewritten after every artifact, so a run that dies later still leaves its finished ones findable.
        self._index = replace(self._index, artifacts=(*self._index.artifacts, record))
        write_index(self._store, self._index)
        loc = self._index.location
        logger.info(
            "artifact stored tenant=%s run=%s task=%s name=%s size=%d",
            loc.tenant, loc.run, loc.task_id, record.name, record.size,
        )  # fmt: skip


@dataclass(frozen=True)
class SealedObject:
    """A new object written through its sealer: plaintext in, sealed segments out; published or dropped whole."""

    target: ObjectWriter
    sealer: Sealer

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Seal plaintext; each finished segment goes to the object."""
        self.sealer.write(data)

    def commit(self) -> None:
        """Seal the last segment, then publish the object."""
        self.sealer.finish()
        self.target.commit()

    def abort(self) -> None:
        """Drop everything written; never raises."""
        self.target.abort()


class _Publishable(Protocol):
    def close(self) -> object: ...

    def abort(self) -> None: ...


class _Published:
    """Leaving `with` publishes the artifact (close), or drops it (abort) when the block raised."""

    def __exit__(
        self: _Publishable, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


class ArtifactWriter(_Published, io.RawIOBase):
    """A write-only stream that hashes, seals and uploads; close() publishes, an error in `with` aborts."""

    def __init__(
        self, name: str, uri: str, target: SealedObject, max_bytes: int, on_stored: Callable[[ArtifactRecord], None]
    ) -> None:
        super().__init__()
        self._name, self._uri, self._target = name, uri, target
        self._max_bytes, self._on_stored = max_bytes, on_stored
        self._sha256 = hashlib.sha256()
        self._size = 0
        self.record: ArtifactRecord | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        """Take bytes: count, hash and seal them; over the cap the artifact is dropped."""
        if self.closed:
            raise ValueError("write to a closed artifact")
        size = memoryview(data).nbytes
        if self._size + size > self._max_bytes:
            self.abort()
            raise ArtifactTooLargeError(f"artifact {self._name!r} is over the cap of {self._max_bytes} bytes")
        self._size += size
        self._sha256.update(data)
        self._target.write(data)
        return size

    def close(self) -> None:
        """Seal the last segment, publish the object and record it (once)."""
        if self.closed:
            return
        try:
            self._target.commit()
        except BaseException:
            self.abort()
            raise
        super().close()
        self.record = ArtifactRecord(self._name, self._size, self._sha256.hexdigest(), self._uri)
        self._on_stored(self.record)

    def abort(self) -> None:
        """Drop the artifact: nothing of it is published."""
        if not self.closed:
            self._target.abort()
            super().close()

    def __del__(self) -> None:
        # A writer dropped without close() is an interrupted one: never publish it half-written.
        self.abort()


class FindingsWriter(_Published):
    """The `findings` artifact, fed finding by finding as JSON lines."""

    def __init__(self, writer: ArtifactWriter) -> None:
        self._writer = writer
        self.count = 0

    def write(self, finding: Mapping[str, Any]) -> None:
        """Append one finding as one line of JSON."""
        self._writer.write(json.dumps(finding, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
        self.count += 1

    def close(self) -> ArtifactRecord:
        """Publish the artifact and return its record."""
        self._writer.close()
        assert self._writer.record is not None  # close() either recorded it or raised
        return self._writer.record

    def abort(self) -> None:
        """Drop the artifact."""
        self._writer.abort()

    def __enter__(self) -> FindingsWriter:
        return self
