"""A task's index entry: its tenant/run prefix, retention and artifacts, kept in the store beside them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tasks.artifacts.errors import ArtifactIntegrityError, ArtifactNotFoundError
from tasks.artifacts.layout import TaskLocation, index_key, legacy_index_key
from tasks.artifacts.store import ObjectStore


@dataclass(frozen=True)
class ArtifactRecord:
    """One stored artifact: name, plaintext size and sha256, and where it is."""

    name: str
    size: int
    sha256: str
    uri: str

    def as_dict(self) -> dict[str, Any]:
        """The record as the task result carries it."""
        return {"name": self.name, "size": self.size, "sha256": self.sha256, "uri": self.uri}


@dataclass(frozen=True)
class TaskIndex:
    """Everything needed to find and expire one task's artifacts after its Celery result is gone."""

    location: TaskLocation
    created: datetime
    expires: datetime
    artifacts: tuple[ArtifactRecord, ...] = ()

    def record(self, name: str) -> ArtifactRecord:
        """The artifact called name."""
        for record in self.artifacts:
            if record.name == name:
                return record
        raise ArtifactNotFoundError(f"task {self.location.task_id} has no artifact {name!r}")

    def to_json(self) -> bytes:
        """The stored form."""
        return json.dumps(
            {
                "task_id": self.location.task_id,
                "tenant": self.location.tenant,
                "run": self.location.run,
                "created": self.created.isoformat(),
                "expires": self.expires.isoformat(),
                "artifacts": [r.as_dict() for r in self.artifacts],
            },
            indent=1,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> TaskIndex:
        """Parse the stored form."""
        try:
            raw = json.loads(data)
            return cls(
                TaskLocation(raw["tenant"], raw["run"], raw["task_id"]),
                datetime.fromisoformat(raw["created"]),
                datetime.fromisoformat(raw["expires"]),
                tuple(ArtifactRecord(a["name"], int(a["size"]), a["sha256"], a["uri"]) for a in raw["artifacts"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactIntegrityError(f"an index entry is malformed: {exc}") from exc


def read_index(store: ObjectStore, tenant: str, task_id: str) -> TaskIndex:
    """The index entry of a tenant's task; ArtifactNotFoundError when it has none (never had artifacts, expired,
    or the task is another tenant's: the same error, so a caller learns nothing about other tenants' ids)."""
    for key in (index_key(tenant, task_id), legacy_index_key(task_id)):
        try:
            index = TaskIndex.from_json(store.get(key))
        except ArtifactNotFoundError:
            continue
        if index.location.tenant == tenant and index.location.task_id == task_id:
            return index
    raise no_artifacts(task_id)


def no_artifacts(task_id: str) -> ArtifactNotFoundError:
    """The one error for a task id with no artifacts of this tenant's, whether someone else's or nobody's."""
    return ArtifactNotFoundError(f"task {task_id} has no artifacts (none were stored, or they expired)")


def write_index(store: ObjectStore, index: TaskIndex) -> None:
    """Store (or replace) a task's index entry, under its tenant."""
    store.put(index_key(index.location.tenant, index.location.task_id), index.to_json())
