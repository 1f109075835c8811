"""Pure functions for volume names, labels, and identifier and filename validation."""

from __future__ import annotations

import re
import secrets
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from isolation.errors import InvalidFilenameError, InvalidIdentifierError

DEFAULT_LABEL_PREFIX = "studio"
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


@dataclass(frozen=True)
class VolumeIdentity:
    """Everything that names and labels one volume: chosen once, at construction."""

    tenant_id: str
    run_id: str
    name: str
    nonce: str
    created: datetime
    prefix: str = DEFAULT_LABEL_PREFIX

    def labels(self) -> dict[str, str]:
        """The labels put on the volume and on every container of this module that holds it."""
        p = self.prefix
        return {
            f"{p}.managed": "true",
            f"{p}.tenant": self.tenant_id,
            f"{p}.run": self.run_id,
            f"{p}.created": format_created(self.created),
            f"{p}.nonce": self.nonce,
        }


def new_identity(tenant_id: str, run_id: str, prefix: str = DEFAULT_LABEL_PREFIX) -> VolumeIdentity:
    """Pick a unique volume name and nonce for a tenant's run."""
    validate_identifier("tenant_id", tenant_id)
    validate_identifier("run_id", run_id)
    validate_label_prefix(prefix)
    now_ms = time.time_ns() // 1_000_000
    name = f"tenant-{tenant_id}-run-{run_id}-{now_ms}-{secrets.token_hex(4)}"
    created = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    return VolumeIdentity(tenant_id, run_id, name, secrets.token_hex(16), created, prefix)


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


def managed_filter(prefix: str = DEFAULT_LABEL_PREFIX, **extra: str) -> dict[str, list[str]]:
    """A Docker `filters=` value selecting this module's resources, optionally narrowed by label."""
    labels = [f"{prefix}.managed=true"] + [f"{prefix}.{k}={v}" for k, v in sorted(extra.items())]
    return {"label": labels}


def label(labels: Mapping[str, str] | None, prefix: str, key: str) -> str | None:
    """Read one prefixed label from a Docker labels mapping (which may be None)."""
    return (labels or {}).get(f"{prefix}.{key}")
