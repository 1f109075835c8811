"""An audit event: one run transition or policy change, its canonical JSON and its hash in a segment's chain (pure)."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """What an event records: a run's transition or an operator's policy change."""

    RUN_ACCEPTED = "run.accepted"
    RUN_REFUSED = "run.refused"
    RUN_STARTED = "run.started"
    RUN_FINISHED = "run.finished"
    RUN_CANCELLED = "run.cancelled"
    RUN_PUT_BACK = "run.put_back"
    POLICY_SCOPE = "policy.scope"
    POLICY_LIMITS = "policy.limits"
    POLICY_HOSTS = "policy.hosts"
    POLICY_WEBHOOKS = "policy.webhooks"
    POLICY_CACHE_CLEAR = "policy.cache_clear"
    POLICY_ARTIFACT_PURGE = "policy.artifact_purge"


@dataclass(frozen=True)
class AuditEvent:
    """One append-only audit record; `targets_digest`/`targets_ref` replace `targets` for a big list when stored.

    `prev_hash` is set by the segment writer: the hash of the event before it in the same segment ("" for the first).
    """

    id: str
    time: datetime
    kind: Kind
    tenant: str = ""
    run_id: str = ""
    task_id: str = ""
    tool: str = ""
    image_id: str = ""
    argv: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    targets_digest: str = ""
    targets_ref: str = ""
    resolved: dict[str, list[str]] = field(default_factory=dict)
    worker: str = ""
    daemon_id: str = ""
    egress_address: str = ""
    status: str = ""
    reason: str = ""
    bytes_in: int | None = None
    bytes_out: int | None = None
    operator: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = ""

    @classmethod
    def new(cls, kind: Kind | str, **values: Any) -> AuditEvent:
        """An event of `kind` happening now, with a fresh id; `values` are the other fields."""
        return cls(id=uuid.uuid4().hex, time=datetime.now(UTC), kind=Kind(kind), **values)

    @property
    def timestamp(self) -> float:
        """The event's time as seconds since the epoch."""
        return self.time.timestamp()

    def as_dict(self) -> dict[str, Any]:
        """The event as JSON-ready values (time as ISO 8601 UTC with microseconds)."""
        # Shallow, unlike dataclasses.asdict, whose deep copy cost 80% of writing a segment (bench.audit's profile).
        values = {name: getattr(self, name) for name in _FIELDS}
        values["time"] = self.time.astimezone(UTC).isoformat(timespec="microseconds")
        values["kind"] = self.kind.value
        return values

    def canonical(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces, ASCII): the bytes hashed, spooled and stored."""
        return canonical_json(self.as_dict())

    def chained(self, prev_hash: str) -> AuditEvent:
        """The same event carrying the hash of the one before it in its segment."""
        return replace(self, prev_hash=prev_hash)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AuditEvent:
        """The event a dict from `as_dict` (or a stored line) stands for; unknown keys are ignored."""
        kept = {k: v for k, v in values.items() if k in _FIELDS}
        kept["time"] = datetime.fromisoformat(kept["time"])
        kept["kind"] = Kind(kept["kind"])
        return cls(**kept)

    @classmethod
    def from_json(cls, line: bytes | str) -> AuditEvent:
        """The event of one canonical JSON line."""
        return cls.from_dict(json.loads(line))


_FIELDS = tuple(f.name for f in fields(AuditEvent))


def canonical_json(value: Any) -> bytes:
    """The one encoding every hash and MAC of the audit is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def event_hash(line: bytes) -> str:
    """The chain hash of a stored event line (its canonical JSON, `prev_hash` included)."""
    return hashlib.sha256(line).hexdigest()
