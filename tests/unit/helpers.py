"""What several unit test modules share: raw kombu messages, fair-share envelopes, and tar archives to read."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import redis

from isolation.archive import MemorySink
from isolation.tarread import ChunkReader, ReadLimits, read_archive
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
