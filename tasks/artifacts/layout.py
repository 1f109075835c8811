"""Where things live in a store: `tenants/<tenant>/runs/<run>/<task id>/<name>` and `index/<tenant>/<task id>.json`.

The index entry's key holds its tenant, so a task id another tenant uses later can never overwrite it. Entries
written before that (`index/<task id>.json`) are still read, for their own tenant only, until they expire.
"""

from __future__ import annotations

from dataclasses import dataclass

from isolation import validate_filename, validate_identifier
from tasks.artifacts.errors import ArtifactNotFoundError

TENANTS = "tenants/"
INDEX = "index/"


@dataclass(frozen=True)
class TaskLocation:
    """One task's place in the store: its tenant, run and task id."""

    tenant: str
    run: str
    task_id: str

    def __post_init__(self) -> None:
        validate_identifier("tenant id", self.tenant)
        validate_identifier("run id", self.run)
        validate_identifier("task id", self.task_id)

    @property
    def prefix(self) -> str:
        """The key prefix every artifact of the task shares (ends with '/')."""
        return f"{tenant_prefix(self.tenant)}runs/{self.run}/{self.task_id}/"

    def key(self, name: str) -> str:
        """The object key of the artifact `name` (a safe relative path)."""
        return self.prefix + validate_filename(name)


def tenant_prefix(tenant: str) -> str:
    """The key prefix of everything a tenant owns (ends with '/')."""
    return f"{TENANTS}{validate_identifier('tenant id', tenant)}/"


def index_key(tenant: str, task_id: str) -> str:
    """The object key of a tenant's task's index entry."""
    return f"{INDEX}{validate_identifier('tenant id', tenant)}/{validate_identifier('task id', task_id)}.json"


def legacy_index_key(task_id: str) -> str:
    """Where an index entry lived before entries were keyed by tenant (read, never written)."""
    return f"{INDEX}{validate_identifier('task id', task_id)}.json"


def parse_key(key: str) -> tuple[TaskLocation, str]:
    """The task and artifact name an object key stands for."""
    parts = key.split("/", 5)
    if len(parts) != 6 or parts[0] != TENANTS.rstrip("/") or parts[2] != "runs":
        raise ArtifactNotFoundError(f"{key!r} is not an artifact key (tenants/<tenant>/runs/<run>/<task>/<name>)")
    return TaskLocation(parts[1], parts[3], parts[4]), validate_filename(parts[5])


def task_id_of(key: str) -> str | None:
    """The task id in an artifact key, or None for anything else."""
    parts = key.split("/", 5)
    return parts[4] if len(parts) == 6 and parts[0] == TENANTS.rstrip("/") else None
