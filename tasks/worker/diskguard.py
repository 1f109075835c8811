"""The disk guard: a worker whose spool or artifact filesystem runs low stops taking runs until space returns; and
the worker's record (`toolrunner status`), written by the same thread.

A thread of the worker's main process checks, every CHECK_SECONDS, the free bytes of the filesystems a run writes
to on this machine: the spool (the temporary directory a run's outputs stream into) and a file:// artifact store.
Below TOOLRUNNER_MIN_FREE_DISK_BYTES on any of them, the worker cancels its own consumers (Celery's
`cancel_consumer` control command, sent to itself): its queued messages stay queued for other workers, parked runs
are dispatched to them, nothing fails and nothing is rejected in a loop. It registers no slots for fair share
while paused (tasks/worker/safetynet.py reads `paused()`), says why in the worker's record (`toolrunner status`)
and in its log, and takes its queues back (`add_consumer`) when every filesystem is above the threshold again.
The record (keys.WORKER, 60 s, rewritten every check) holds what `toolrunner status` shows of a worker: its
engine's ID, slots, runs it holds now, queues, free bytes per path, why it is paused, its reaper's last pass.
Runs already running go on; one that fills the disk mid-way fails with the reason (tasks/service/outputs.py).

What it does not watch: the engine's own disk (a DinD daemon's data volume, where the tool writes its outputs
first). The Engine API reports no free space for it (`/info` gives its path, `/system/df` the sizes of what it
holds after a walk of every image and volume), so it is left to the engine host's own monitoring
(docs/operations.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import redis
from celery import Celery
from celery.signals import worker_ready, worker_shutdown
from celery.worker import state as worker_state

import isolation
from config import Settings
from tasks.worker import health, keys, reaper, role
from tasks.worker.app import app

logger = logging.getLogger(__name__)

CHECK_SECONDS = 10.0
_Field = bytes | bytearray | memoryview | str | int | float  # what redis-py's hset takes


@dataclass(frozen=True)
class Reading:
    """Free bytes of each watched path, and why the worker must not take runs (None: it may)."""

    free: dict[str, int]
    low: str | None


def watched(settings: Settings) -> list[str]:
    """The directories whose filesystems a run writes to on this machine: the spool and a file:// artifact store."""
    return [str(path) for path in health.watched_directories(settings.artifact_url).values()]


def read(paths: list[str], minimum: int) -> Reading:
    """Free bytes under each path (its nearest existing parent's filesystem) and, when one is below `minimum`, why."""
    free = {path: health.free_bytes(Path(path)) for path in paths}
    low = [f"{path} has {_size(bytes_)} free" for path, bytes_ in free.items() if bytes_ < minimum]
    why = f"{'; '.join(low)}, under TOOLRUNNER_MIN_FREE_DISK_BYTES={_size(minimum)}" if low else None
    return Reading(free, why)


def _size(value: int) -> str:
    return f"{value / (1 << 30):.2f} GiB" if value >= 1 << 30 else f"{value / (1 << 20):.1f} MiB"


class Guard:
    """One worker's guard: pauses and resumes its consumers as its disks fill and free up."""

    def __init__(
        self, celery: Celery, redis_client: redis.Redis, settings: Settings, hostname: str, queues: list[str],
        slots: int = 0, daemon: str = "", paths: list[str] | None = None,
    ) -> None:  # fmt: skip
        self.celery, self.redis, self.settings = celery, redis_client, settings
        self.hostname, self.queues, self.slots, self.daemon = hostname, queues, slots, daemon
        self.paths = watched(settings) if paths is None else paths
        self.paused: str | None = None

    def check(self) -> Reading:
        """Read the disks, pause or resume the consumers when that changed, and record it for `toolrunner status`."""
        reading = read(self.paths, self.settings.min_free_disk_bytes)
        if reading.low and not self.paused:
            logger.error("disk low on worker %s: %s; it takes no runs until space returns", self.hostname, reading.low)
            self._consumers("cancel_consumer")
        elif not reading.low and self.paused:
            logger.warning("disk space back on worker %s: it takes runs again", self.hostname)
            self._consumers("add_consumer")
        self.paused = reading.low
        self._record(reading)
        return reading

    def _consumers(self, command: str) -> None:
        for queue in self.queues:
            getattr(self.celery.control, command)(queue, destination=[self.hostname], reply=True, timeout=5)

    def _record(self, reading: Reading) -> None:
        record = keys.WORKER(self.hostname)
        fields: dict[_Field, _Field] = {f"free:{path}": free for path, free in reading.free.items()}
        fields.update({
            "paused": reading.low or "", "checked": time.time(), "slots": self.slots, "daemon": self.daemon,
            "busy": len(worker_state.active_requests), "queues": ",".join(self.queues),
            "reaped": reaper.last_pass.at or "", "past_deadline": reaper.last_pass.past_deadline,
        })  # fmt: skip
        with self.redis.pipeline() as pipe:
            pipe.delete(record)
            pipe.hset(record, mapping=fields)
            pipe.expire(record, int(CHECK_SECONDS * 6))
            pipe.execute()


_guard: Guard | None = None
_stop = threading.Event()


def paused() -> bool:
    """Whether this worker's guard has it taking no runs (its disk is low)."""
    return _guard is not None and _guard.paused is not None


class WorkerCollector:
    """This worker's own gauges, read at scrape time in its main process: `toolrunner_worker_paused` (1 while its
    disk guard has it taking no runs) and `toolrunner_runs_past_deadline` (the tool containers its reaper's last
    pass found past their deadline and killed)."""

    def collect(self) -> Iterator[Any]:
        """Two unlabelled gauges."""
        from prometheus_client.core import GaugeMetricFamily

        yield GaugeMetricFamily(
            "toolrunner_worker_paused", "1 while the worker takes no runs because its disk is low", value=int(paused())
        )
        yield GaugeMetricFamily(
            "toolrunner_runs_past_deadline",
            "Tool containers the reaper's last pass found past their deadline (and killed)",
            value=reaper.last_pass.past_deadline,
        )


def daemon_id() -> str:
    """The ID of the engine this worker runs its tools on ('' when it does not answer now)."""
    try:
        with closing(isolation.connect(None)) as client:
            return str(client.info().get("ID", ""))
    except (isolation.IsolationError, docker.errors.DockerException, OSError) as exc:
        logger.warning("the worker's engine did not say its ID: %s", exc)
        return ""


def _loop(guard: Guard, stop: threading.Event) -> None:
    while True:
        try:
            guard.check()
        except (OSError, redis.RedisError) as exc:  # a disk or Redis hiccup: the next check tries again
            logger.warning("disk guard check failed (next in %ss): %s", CHECK_SECONDS, exc)
        if stop.wait(CHECK_SECONDS):
            return


@worker_ready.connect
def _start(sender: Any = None, **_: Any) -> None:
    """Start the guard once the worker consumes (its queues are known then), in the main process. A worker that
    delivers webhooks alone writes no run's outputs and has no engine: it watches no disk, only keeps its record."""
    global _guard
    queues = [queue.name for queue in getattr(getattr(sender, "task_consumer", None), "queues", [])]
    hostname = str(getattr(sender, "hostname", ""))
    slots = int(getattr(getattr(sender, "pool", None), "num_processes", 0) or 0)
    client = redis.Redis.from_url(app.settings.broker)
    if role.delivers_only(role.consumed(app, hostname)):
        _guard = Guard(
            app, client, app.settings, hostname, queues, role.offered_slots(slots, [role.WEBHOOKS_QUEUE]), paths=[]
        )
    else:
        _guard = Guard(app, client, app.settings, hostname, queues, slots, daemon_id())
    _stop.clear()
    threading.Thread(target=_loop, args=(_guard, _stop), daemon=True, name="disk-guard").start()


@worker_shutdown.connect
def _halt(**_: Any) -> None:
    _stop.set()
