"""What several unit test modules share: kombu messages, fair-share envelopes, tar archives, scopes, audit journals."""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from config import Settings
from isolation.archive import MemorySink
from isolation.tarread import ChunkReader, ReadLimits, read_archive
from tasks.artifacts import ObjectStore
from tasks.audit import AuditEvent, AuditKey, Journal, Kind
from tasks.errors import OutOfScopeError
from tasks.scope.check import Checker, check
from tasks.scope.entry import parse
from tasks.scope.matcher import Scope
from tasks.scope.policy import policy
from tasks.scope.resolve import Resolved
from tasks.tools import Invocation, Target, ToolParams, ToolSpec
from tasks.worker import keys
from tasks.worker.parking import Envelope

# --- messages and fair share ---------------------------------------------------------------------------------------

QUEUE = "celery"


def raw_message(task: str, args: list[Any], kwargs: dict[str, Any] | None = None, **headers: Any) -> bytes:
    """A message as kombu's Redis transport stores it (protocol 2, JSON body, base64 encoded)."""
    body = base64.b64encode(json.dumps([args, kwargs or {}, {"callbacks": None}]).encode()).decode()
    message = {
        "body": body, "content-encoding": "utf-8", "content-type": "application/json",
        "headers": {"task": task, "id": "t-1", "eta": None, "retries": 0, **headers},
        "properties": {"body_encoding": "base64", "delivery_info": {"exchange": "", "routing_key": "celery"}},
    }  # fmt: skip
    return json.dumps(message).encode()


def envelope(task_id: str, tenant: str, tool: str = "script") -> Envelope:
    """The envelope of a `run_tool` message for this tenant's run on QUEUE (the task id is also its run id)."""
    return Envelope(task_id, "toolrunner.run_tool", [tool, tenant, task_id], {}, QUEUE, tenant, tool)


def register(conn: redis.Redis, slots: int) -> None:
    """Register one live worker with this many slots, as a worker's heartbeat does."""
    conn.zadd(keys.WORKERS(), {f"w|{slots}": int(time.time() * 1000) + 60_000})


# --- tar archives --------------------------------------------------------------------------------------------------

LIMITS = ReadLimits(max_file_bytes=1 << 20, max_total_bytes=4 << 20, timeout_seconds=30)


def make_tar(*entries: tarfile.TarInfo | tuple[str, bytes], fmt: int = tarfile.DEFAULT_FORMAT) -> bytes:
    """A tar archive like the one get_archive returns, with the given entries (in tar format fmt)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for entry in entries:
            if isinstance(entry, tuple):
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                archive.addfile(info, io.BytesIO(entry[1]))
            else:
                archive.addfile(entry)
    return buffer.getvalue()


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    """A tar entry of another type than a regular file (a link, a device, a fifo...)."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def chunks_of(data: bytes, size: int = 1000) -> Iterator[bytes]:
    """The bytes in chunks of `size`, as the engine streams an archive."""
    return iter([data[i : i + size] for i in range(0, len(data), size)])


def read(data: bytes, wanted: set[str], strip_root: bool = True, limits: ReadLimits = LIMITS) -> dict[str, bytes]:
    """The wanted files of an archive, read from its chunks into memory."""
    sink = MemorySink()
    read_archive(ChunkReader(chunks_of(data), limits), wanted, strip_root, limits, sink)
    return sink.result()


# --- scope ---------------------------------------------------------------------------------------------------------


def scope_of(*entries: str, exclude: Iterable[str] = ()) -> Scope:
    """The compiled scope of these entries and exclusions, read as an operator's entries of any width."""
    return Scope.of(
        [parse(e, max_prefix_v4=0, max_prefix_v6=0) for e in entries],
        [parse(e, max_prefix_v4=0, max_prefix_v6=0) for e in exclude],
    )


@dataclass
class Answers:
    """A resolver answering from a table: a name it lacks does not exist, one mapped to None timed out."""

    table: Mapping[str, Sequence[str] | None] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def __call__(self, names: Sequence[str], timeout: float) -> Resolved:
        self.asked += names
        return {name: self._addresses(name) for name in names}

    def _addresses(self, name: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address] | None:
        found = self.table.get(name, ())
        return None if found is None else [ipaddress.ip_address(a) for a in found]


def scope_checker(answers: Answers | None = None, **scope_settings: Any) -> Checker:
    """The checker of these scope settings (no private range allowed unless given) and a table resolver."""
    settings = Settings(**{"scope_allow_private": (), **scope_settings})
    return Checker(policy(settings), answers or Answers(), settings.scope_resolve_timeout_seconds)


def targets_spec(network: str | None = None, *, declares_targets: bool = True) -> ToolSpec:
    """A tool whose params are its targets (a list of (kind, text)); without declares_targets it declares none."""
    return ToolSpec(
        name="fake", image="fake:local", entrypoint=["fake"], params_model=ToolParams,
        build=lambda params: Invocation(argv=[]), parse=lambda outputs: iter(()), network=network,
        targets=_given if declares_targets else None,
    )  # fmt: skip


def _given(params: list[Target]) -> list[Target]:
    return params


def refusal(
    spec: ToolSpec, params: Any, scope: Scope | None, checker: Checker | None = None, network: str = "bridge"
) -> str | None:
    """The message tenant acme's run is refused with, or None when check() lets it run."""
    try:
        check(spec, params, "acme", scope=scope, network=network, checker=checker or scope_checker())
    except OutOfScopeError as exc:
        return str(exc)
    return None


# --- the audit trail ------------------------------------------------------------------------------------------------


@dataclass
class AuditClock:
    """A clock a test moves by hand: journals and verify read it instead of the time."""

    now: float = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC, on every cadence the audit tests use

    def __call__(self) -> float:
        return self.now

    @property
    def moment(self) -> datetime:
        """The clock's time as an aware datetime."""
        return datetime.fromtimestamp(self.now, UTC)


def audit_event(event_id: str, at: float, **values: Any) -> AuditEvent:
    """A run.accepted event of tenant acme (unless `values` say otherwise) at epoch second `at`."""
    fields: dict[str, Any] = {"kind": Kind.RUN_ACCEPTED, "tenant": "acme", **values}
    return AuditEvent(id=event_id, time=datetime.fromtimestamp(at, UTC), **fields)


def audit_journal(store: ObjectStore, key: AuditKey, spool: Path, clock: AuditClock, stream: str = "w1") -> Journal:
    """A journal on a 10-second cadence whose spool was replayed (no flusher thread: tests flush by hand)."""
    journal = Journal(store, key, stream, spool, segment_seconds=10, clock=clock)
    journal.replay()
    return journal


def reseal(store: ObjectStore, key: AuditKey, object_key: str, edit: Callable[[list[bytes]], list[bytes]]) -> None:
    """Rewrite a stored segment's event lines through `edit`, sealed again (what only a key holder can do)."""
    lines = edit(key.open(object_key, store.get(object_key)).splitlines())
    store.put(object_key, key.seal(object_key, b"".join(line + b"\n" for line in lines)))


def crash(journal: Journal) -> None:
    """What a SIGKILL does to a journal: nothing stored, its spool's lock let go (the process holding it is gone)."""
    journal._spool.close()
