"""Pure functions for volume names, the label schema, and identifier and filename validation."""

from __future__ import annotations

import math
import re
import secrets
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from isolation.defaults import LABEL_PREFIX as DEFAULT_LABEL_PREFIX
from isolation.errors import InvalidFilenameError, InvalidIdentifierError

IDENTIFIER_RULE = r"^[A-Za-z0-9_-]{1,64}$"
MAX_SEGMENT_BYTES = 255
MAX_PATH_BYTES = 1024

_IDENTIFIER = re.compile(IDENTIFIER_RULE)
_LABEL_PREFIX = re.compile(r"^[a-z0-9]+([.-][a-z0-9]+)*$")


def validate_identifier(field: str, value: object) -> str:
    """Return value unchanged if it is a valid tenant/run id, else raise InvalidIdentifierError."""
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise InvalidIdentifierError(
            f"{field} {value!r} is invalid: it must match {IDENTIFIER_RULE} "
            "(1-64 ASCII letters, digits, '_' or '-'); it is never rewritten, so fix it at the caller"
        )
    return value


def validate_label_prefix(prefix: str) -> str:
    """Return prefix if it can head Docker label keys (lowercase dotted words)."""
    if not _LABEL_PREFIX.fullmatch(prefix):
        raise ValueError(f"label prefix {prefix!r} must be lowercase letters/digits joined by '.' or '-'")
    return prefix


def validate_filename(name: object) -> str:
    """Return name if it is a safe relative POSIX path, else raise InvalidFilenameError."""
    if not isinstance(name, str):
        raise InvalidFilenameError(f"file name must be a str, got {type(name).__name__}")
    problem = _filename_problem(name)
    if problem:
        raise InvalidFilenameError(f"file name {name!r} is refused: {problem}")
    return name


def validate_filenames(names: Iterable[object]) -> list[str]:
    """Validate every name and refuse duplicates and file/directory clashes among them."""
    checked = [validate_filename(n) for n in names]
    seen = set(checked)
    if len(seen) != len(checked):
        raise InvalidFilenameError("file names must be unique")
    for name in checked:
        parents = {"/".join(name.split("/")[:i]) for i in range(1, name.count("/") + 1)}
        clash = parents & seen
        if clash:
            raise InvalidFilenameError(f"{sorted(clash)[0]!r} is both a file and a directory of {name!r}")
    return checked


def _filename_problem(name: str) -> str | None:
    if not name:
        return "it is empty"
    if name.startswith("/"):
        return "it must be relative (no leading '/')"
    if "\\" in name:
        return "backslashes are not allowed"
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name):
        return "NUL, control characters and lone surrogates are not allowed"
    if len(name.encode()) > MAX_PATH_BYTES:
        return f"the path is longer than {MAX_PATH_BYTES} bytes"
    return next(filter(None, map(_segment_problem, name.split("/"))), None)


def _segment_problem(segment: str) -> str | None:
    if segment in ("", ".", ".."):
        return "empty, '.' and '..' path segments are not allowed"
    if len(segment.encode()) > MAX_SEGMENT_BYTES:
        return f"a path segment is longer than {MAX_SEGMENT_BYTES} bytes"
    return None


class Label(StrEnum):
    """Every label key the project writes, without the prefix: the whole schema in one place."""

    MANAGED = "managed"
    TENANT = "tenant"
    RUN = "run"
    CREATED = "created"
    NONCE = "nonce"
    ROLE = "role"
    DEADLINE = "deadline"
    CONTENTS = "contents"  # a run workspace's volume: "inputs" or "outputs"
    # Written by the task layer as extra labels (isolation only prefixes them), and matched by its cleanups.
    TASK = "task"
    TOOL = "tool"
    WORKER = "worker"


class Role(StrEnum):
    """What a managed container is for, in its `<prefix>.role` label."""

    TOOL = "tool"
    HELPER = "helper"


def label_key(prefix: str, key: str) -> str:
    """The full label key for an unprefixed key: every label key of the project is built here."""
    return f"{prefix}.{key}"


def prefixed(labels: Mapping[str, str], prefix: str) -> dict[str, str]:
    """The same labels with their keys prefixed (callers name their extra labels without the prefix)."""
    return {label_key(prefix, k): v for k, v in labels.items()}


def label(labels: Mapping[str, str] | None, prefix: str, key: str) -> str | None:
    """Read one prefixed label from a Docker labels mapping (which may be None)."""
    return (labels or {}).get(label_key(prefix, key))


def managed_filter(
    prefix: str = DEFAULT_LABEL_PREFIX, *, present: Iterable[str] = (), **extra: str
) -> dict[str, list[str]]:
    """A Docker `filters=` value selecting this module's resources, narrowed by label values and by keys present."""
    wanted = [f"{label_key(prefix, Label.MANAGED)}=true"]
    wanted += [f"{label_key(prefix, k)}={v}" for k, v in sorted(extra.items())]
    wanted += [label_key(prefix, k) for k in present]
    return {"label": wanted}


def role_labels(labels: Mapping[str, str], role: Role, *, prefix: str) -> dict[str, str]:
    """A container's labels: the (prefixed) labels of the volume it holds plus its role."""
    return {**labels, label_key(prefix, Label.ROLE): str(role)}


def deadline_labels(deadline: datetime, *, prefix: str) -> dict[str, str]:
    """The `<prefix>.deadline` label: after this moment the reaper kills and removes the resource."""
    return {label_key(prefix, Label.DEADLINE): format_deadline(deadline)}


def format_deadline(moment: datetime) -> str:
    """UTC epoch seconds, rounded up: the form of the `deadline` label."""
    if moment.tzinfo is None:
        raise ValueError("a deadline must be timezone-aware")
    return str(math.ceil(moment.timestamp()))


def parse_deadline(value: str | None) -> datetime | None:
    """Parse a `deadline` label; None when absent or malformed (the reaper then leaves the resource alone)."""
    if not value or not value.isascii() or not value.isdigit():
        return None
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


@dataclass(frozen=True, kw_only=True)
class ManagedVolume:
    """One managed volume as listed: its name, whose it is, when it was made and whether a container uses it."""

    name: str
    tenant: str
    run: str
    created: datetime | None
    deadline: datetime | None
    in_use: bool


def managed_volume(summary: Mapping[str, Any], prefix: str, *, in_use: bool) -> ManagedVolume:
    """Read a ManagedVolume from one entry of Docker's volume list."""
    labels = summary.get("Labels") or {}
    return ManagedVolume(
        name=str(summary["Name"]),
        tenant=label(labels, prefix, Label.TENANT) or "",
        run=label(labels, prefix, Label.RUN) or "",
        created=parse_created(label(labels, prefix, Label.CREATED)) or parse_created(summary.get("CreatedAt")),
        deadline=parse_deadline(label(labels, prefix, Label.DEADLINE)),
        in_use=in_use,
    )


@dataclass(frozen=True)
class VolumeIdentity:
    """Everything that names and labels one volume: chosen once, at construction."""

    tenant_id: str
    run_id: str
    name: str
    nonce: str
    created: datetime
    prefix: str = DEFAULT_LABEL_PREFIX
    deadline: datetime | None = None

    def labels(self) -> dict[str, str]:
        """The labels put on the volume and on every container of this module that holds it."""
        own: dict[str, str] = {
            Label.MANAGED: "true",
            Label.TENANT: self.tenant_id,
            Label.RUN: self.run_id,
            Label.CREATED: format_created(self.created),
            Label.NONCE: self.nonce,
        }
        if self.deadline is not None:
            own[Label.DEADLINE] = format_deadline(self.deadline)
        return prefixed(own, self.prefix)


def new_identity(
    tenant_id: str, run_id: str, prefix: str = DEFAULT_LABEL_PREFIX, *, deadline: datetime | None = None
) -> VolumeIdentity:
    """Pick a unique volume name and nonce for a tenant's run."""
    validate_identifier("tenant_id", tenant_id)
    validate_identifier("run_id", run_id)
    validate_label_prefix(prefix)
    now_ms = time.time_ns() // 1_000_000
    name = f"tenant-{tenant_id}-run-{run_id}-{now_ms}-{secrets.token_hex(4)}"
    created = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    if deadline is not None:
        format_deadline(deadline)  # refuse a naive deadline here, before any Docker call
    return VolumeIdentity(tenant_id, run_id, name, secrets.token_hex(16), created, prefix, deadline)


def format_created(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds, the form of the `created` label."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_created(value: str | None) -> datetime | None:
    """Parse a `created` label; None when absent or malformed (the sweep then treats it as unknown)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
