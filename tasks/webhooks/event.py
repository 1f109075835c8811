"""A webhook event: its type from the run's status, its stable id, and its payload under 64 KiB (pure).

The payload follows the Standard Webhooks shape, `{"type", "timestamp", "data"}`, where `data` is the run's result
without its `findings` (status, reason, stats, counts, artifact URIs, `findings.jsonl` among them). A result too big
for MAX_PAYLOAD_BYTES loses its stderr tail first, then the tails of its lists, and says so (`truncated: true`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

MAX_PAYLOAD_BYTES = 64 << 10
_LISTS = ("artifacts", "missing_outputs", "notices")  # trimmed from the end, in this order, when over the cap


class EventType(StrEnum):
    """What happened to a run, as the payload's `type` says it."""

    SUCCEEDED = "run.succeeded"
    FAILED = "run.failed"
    TIMED_OUT = "run.timed_out"
    CANCELLED = "run.cancelled"


CANCELLED_STATUS = "cancelled"  # the `status` of a cancelled run's payload (a result's statuses never say it)
ERROR_STATUS = "error"  # the `status` of a run that raised instead of returning a result (its Celery state FAILURE)
_BY_STATUS = {
    "ok": EventType.SUCCEEDED,
    "tool_failed": EventType.FAILED,
    ERROR_STATUS: EventType.FAILED,
    "timed_out": EventType.TIMED_OUT,
    CANCELLED_STATUS: EventType.CANCELLED,
}


def event_type(status: str) -> EventType:
    """The event a run's status stands for; any status a later release adds is a failure until mapped."""
    return _BY_STATUS.get(status, EventType.FAILED)


def event_id(tenant: str, task_id: str) -> str:
    """The event's id, the `webhook-id` of every attempt: one run ends once, so its tenant and task id name it."""
    return "evt_" + hashlib.sha256(f"{tenant}\0{task_id}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Event:
    """One event of one tenant's run: what every attempt sends, byte for byte."""

    id: str
    type: EventType
    tenant: str
    task_id: str
    created: float  # when the run's final state was stored (epoch seconds): the lag is measured from it
    body: str  # the JSON payload as signed and sent

    def as_dict(self) -> dict[str, Any]:
        """The stored form (with the delivery's own fields added by the outbox)."""
        return {
            "id": self.id, "type": self.type.value, "tenant": self.tenant, "task_id": self.task_id,
            "created": self.created, "body": self.body,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> Event:
        """An event read back from its stored form."""
        return cls(
            str(stored["id"]), EventType(stored["type"]), str(stored["tenant"]), str(stored["task_id"]),
            float(stored["created"]), str(stored["body"]),
        )  # fmt: skip


def for_result(result: Mapping[str, Any], created: float) -> Event:
    """The event of a finished run: its type from the result's status, its data the result without findings."""
    data = {key: value for key, value in result.items() if key != "findings"}
    return _event(str(result["tenant_id"]), str(result["task_id"]), event_type(str(result["status"])), data, created)


def for_end(task_id: str, tool: str, tenant: str, run_id: str, status: str, reason: str, created: float) -> Event:
    """The event of a run that ended with no result: cancelled, or raised (what it was, and why it ended)."""
    data = {
        "tool": tool, "tenant_id": tenant, "run_id": run_id, "task_id": task_id, "status": status,
        "reason": reason[:2000],
    }  # fmt: skip
    return _event(tenant, task_id, event_type(status), data, created)


def _event(tenant: str, task_id: str, kind: EventType, data: dict[str, Any], created: float) -> Event:
    stamp = datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z")
    body = payload({"type": kind.value, "timestamp": stamp, "data": data})
    return Event(event_id(tenant, task_id), kind, tenant, task_id, created, body)


def payload(envelope: dict[str, Any], limit: int = MAX_PAYLOAD_BYTES) -> str:
    """The envelope as compact JSON of at most `limit` bytes: its data's stderr tail, then its lists' tails, and
    then any chunk failures listed, go first; what was cut is flagged `truncated`."""
    body = _dumps(envelope)
    if len(body) <= limit:
        return body
    data = dict(envelope["data"], truncated=True, stderr_tail="")
    for name in (*_LISTS, "chunks"):
        while len(body := _dumps({**envelope, "data": data})) > limit and _shorten(data, name):
            pass
    if len(body) > limit:  # still over (a giant reason): only what names the run and how it ended
        keep = ("tool", "tenant_id", "run_id", "task_id", "status", "truncated")
        data = {key: data.get(key) for key in keep}
        body = _dumps({**envelope, "data": data})
    return body


def _shorten(data: dict[str, Any], name: str) -> bool:
    """Halve one list of the data (a chunked run's failures, for "chunks"); False when nothing is left to cut."""
    if name == "chunks":
        chunks = data.get("chunks")
        if not isinstance(chunks, dict) or not chunks.get("failed"):
            return False
        data["chunks"] = {**chunks, "failed": chunks["failed"][: len(chunks["failed"]) // 2]}
        return True
    items = data.get(name)
    if not isinstance(items, list) or not items:
        return False
    data[name] = items[: len(items) // 2]
    return True


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, sort_keys=True)
