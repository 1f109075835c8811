"""The artifact layer's front: write a task's artifacts, read them back, list, expire and purge them.

No presigned URLs: every stored object is ciphertext under a data key that only the tenant's key-encryption key
unwraps, so a URL straight to the bucket would hand out bytes nobody outside the worker tier can read. The API tier
streams `Artifacts.open_artifact()` to its client instead (it decrypts and verifies on the way).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, cast

from tasks.artifacts.crypto import OpenedReader
from tasks.artifacts.errors import ArtifactIntegrityError, ArtifactNotFoundError
from tasks.artifacts.index import ArtifactRecord, TaskIndex, no_artifacts, read_index
from tasks.artifacts.keys import KeyProvider
from tasks.artifacts.layout import TaskLocation, parse_key
from tasks.artifacts.retention import RetentionReport, purge_tenant, sweep_expired
from tasks.artifacts.store import ObjectStore
from tasks.artifacts.writer import ArtifactLimits, TaskArtifacts

DEFAULT_RETENTION_DAYS = 30
RESULT_NAME = "result.json"  # a finished run's result, kept after the result backend lets it go
READ_CHUNK = 1 << 20


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Artifacts:
    """A store plus the keys that seal its contents; build one at worker start and pass it down."""

    def __init__(
        self,
        store: ObjectStore,
        keys: KeyProvider,
        *,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        limits: ArtifactLimits | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if retention_days < 1:
            raise ValueError("artifact retention must be at least one day")
        self.store, self.keys = store, keys
        self.retention = timedelta(days=retention_days)
        self._limits, self._clock = limits or ArtifactLimits(), clock

    def __repr__(self) -> str:
        return f"<Artifacts {self.store.base_uri} keys={self.keys.key_id}>"

    def for_task(self, tenant: str, run: str, task_id: str) -> TaskArtifacts:
        """The sink for one task's artifacts (an `isolation.archive.Sink`), expiring after the retention."""
        created = self._clock()
        index = TaskIndex(TaskLocation(tenant, run, task_id), created, created + self.retention)
        return TaskArtifacts(self.store, self.keys, index, self._limits)

    def keep_result(self, tenant: str, run: str, task_id: str, result: Mapping[str, Any]) -> ArtifactRecord:
        """Store a finished run's result as its `result.json`, beside its other artifacts and under their retention.

        A task with no artifacts yet gets an index entry expiring after the retention; one that has them keeps its
        entry's expiry. Storing it again (a redelivery returning the stored result) replaces the earlier one.
        """
        try:
            index = self.index(task_id, tenant=tenant)
            index = replace(index, artifacts=tuple(r for r in index.artifacts if r.name != RESULT_NAME))
        except ArtifactNotFoundError:
            created = self._clock()
            index = TaskIndex(TaskLocation(tenant, run, task_id), created, created + self.retention)
        sink = TaskArtifacts(self.store, self.keys, index, self._limits)
        with sink.open(RESULT_NAME) as stream:
            stream.write(json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode())
        return sink.records[-1]

    def kept_result(self, task_id: str, *, tenant: str) -> dict[str, Any]:
        """The result `keep_result` stored for a tenant's task, decrypted and verified.

        ArtifactNotFoundError when there is none: never stored, expired, or another tenant's (the same error).
        """
        with self.open_artifact(task_id, RESULT_NAME, tenant=tenant) as stream:
            kept: dict[str, Any] = json.loads(stream.read())
        return kept

    def index(self, task_id: str, *, tenant: str) -> TaskIndex:
        """A tenant's task's index entry: run, expiry and artifacts. Another tenant's task is not found."""
        return read_index(self.store, tenant, task_id)

    def list_artifacts(self, task_id: str, *, tenant: str) -> list[ArtifactRecord]:
        """The artifacts of a tenant's task."""
        return list(self.index(task_id, tenant=tenant).artifacts)

    def open_artifact(self, uri_or_task_id: str, name: str | None = None, *, tenant: str) -> BinaryIO:
        """A readable plaintext stream of a tenant's artifact, by its URI or by (task id, name).

        Another tenant's artifact raises the same ArtifactNotFoundError as a missing one. Each segment is
        authenticated before its bytes are returned; at the end the size and sha256 are checked against the
        index. Tampering raises ArtifactIntegrityError, never returns altered bytes.
        """
        if name is None:
            location, name = parse_key(self._key_of(uri_or_task_id))
            if location.tenant != tenant:
                raise no_artifacts(location.task_id)
        else:
            location = self.index(uri_or_task_id, tenant=tenant).location
        index = self.index(location.task_id, tenant=tenant)
        if index.location != location:
            raise ArtifactNotFoundError(f"{uri_or_task_id!r} does not match task {location.task_id}'s index entry")
        record, key = index.record(name), location.key(name)
        raw = self.store.open(key)
        try:
            opened = OpenedReader(raw.read, self.keys, location.tenant, key)
        except BaseException:
            raw.close()
            raise
        return cast(BinaryIO, io.BufferedReader(_VerifiedReader(opened, raw, record), READ_CHUNK))

    def sweep_expired(self, now: datetime | None = None) -> RetentionReport:
        """Delete every task whose retention has passed (the periodic sweep)."""
        return sweep_expired(self.store, now or self._clock(), self.retention)

    def purge_tenant(self, tenant: str) -> RetentionReport:
        """Delete everything one tenant has in the store."""
        return purge_tenant(self.store, tenant)

    def _key_of(self, uri: str) -> str:
        base = self.store.base_uri
        if not uri.startswith(base):
            raise ArtifactNotFoundError(f"{uri!r} is not in this artifact store ({base})")
        return uri[len(base) :]


class _VerifiedReader(io.RawIOBase):
    """Checks the plaintext's size and sha256 against the index record as it is read."""

    def __init__(self, opened: OpenedReader, raw: BinaryIO, record: ArtifactRecord) -> None:
        self._opened, self._raw, self._record = opened, raw, record
        self._sha256 = hashlib.sha256()
        self._size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not len(buffer):
            return 0
        n = self._opened.readinto(buffer)
        self._size += n
        self._sha256.update(buffer[:n])
        if self._size > self._record.size or (n == 0 and not self._matches()):
            raise ArtifactIntegrityError(
                f"artifact {self._record.name!r} does not match its index entry (size or sha256 differ)"
            )
        return n

    def _matches(self) -> bool:
        return self._size == self._record.size and self._sha256.hexdigest() == self._record.sha256

    def close(self) -> None:
        self._raw.close()
        super().close()
