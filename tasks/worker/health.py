"""Gauges the alert rules read at scrape time: the queue's oldest waiting run and free slots, free disk, certificates.

Collectors of the worker's main process (metrics.py registers them), each reading its source when Prometheus
scrapes: Redis for the fleet-wide queue (every worker serves the same values; rules take the max), the local
filesystems and the TLS files this worker's Docker client loads. Labels are bounded: two paths, two certificates.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from cryptography import x509

from tasks.worker import keys

logger = logging.getLogger(__name__)

LEASES_READ = 10_000  # live leases read per scrape (one per running run: never near this)


@dataclass(frozen=True)
class QueueState:
    """The fleet's queue as the alert rules and `toolrunner status` need it: how long the oldest parked run waits,
    slots and their use, runs queued, picked and on their way, bytes of parked envelopes, leases nobody runs."""

    oldest_waiting_seconds: float
    slots: int
    slots_used: int
    queued: int = 0
    dispatching: int = 0
    parked_bytes: int = 0
    orphaned_leases: int = 0


def queue_state(redis_client: redis.Redis, now: float, queue: str = "") -> QueueState:
    """Read the parked runs' oldest park time, the live workers' slots, the live leases, the queue's depth (`queue`,
    '' for none), the runs dispatching and the parked envelopes' memory (one round trip), then which live leases
    no worker runs (a second: their run locks)."""
    now_ms = int(now * 1000)
    with redis_client.pipeline(transaction=False) as pipe:
        pipe.zrange(keys.PARKED_AT(), 0, 0, withscores=True)
        pipe.zrangebyscore(keys.WORKERS(), now_ms, "+inf")
        pipe.zrangebyscore(keys.LEASES(), now_ms, "+inf", start=0, num=LEASES_READ)
        pipe.llen(queue) if queue else pipe.echo("0")
        pipe.zcard(keys.DISPATCHING())
        pipe.memory_usage(keys.PARKED())  # sampled (5 fields): O(1), an estimate for a big hash
        oldest, workers, leased, queued, dispatching, parked_bytes = pipe.execute()
    return QueueState(
        oldest_waiting_seconds=max(0.0, now - oldest[0][1] / 1000) if oldest else 0.0,
        slots=sum(slots_of(member) for member in workers),
        slots_used=len(leased),
        queued=int(queued),
        dispatching=int(dispatching),
        parked_bytes=int(parked_bytes or 0),
        orphaned_leases=_orphaned(redis_client, [m.decode() if isinstance(m, bytes) else m for m in leased]),
    )


def _orphaned(redis_client: redis.Redis, leased: list[str]) -> int:
    """How many of these leased runs no worker runs: not picked and on their way (dispatching), and no run lock (a
    running run holds one, renewed while it runs). A worker that died leaves such leases until their TTL ends."""
    if not leased:
        return 0
    with redis_client.pipeline(transaction=False) as pipe:
        for task_id in leased:
            pipe.zscore(keys.DISPATCHING(), task_id)
            pipe.get(keys.IDENTITY(task_id))
        replies = pipe.execute()
    # A binding is "<task id>:<tool>:<tenant>:<run>", the run lock's own key suffix (delivery.Delivery.key).
    bindings = [binding for picked, binding in zip(replies[::2], replies[1::2], strict=True) if picked is None]
    with redis_client.pipeline(transaction=False) as pipe:
        for binding in bindings:
            pipe.exists(keys.RUNNING(binding.decode() if binding else "-"))
        return sum(1 for held in pipe.execute() if not held)


def slots_of(member: bytes | str) -> int:
    """The slots a WORKERS member (`hostname|concurrency`) registers, as common.lua's capacity() reads it (pure)."""
    text = member.decode() if isinstance(member, bytes) else member
    return int(text.rsplit("|", 1)[1])


class QueueCollector:
    """The queue's gauges, fleet-wide from Redis: the oldest waiting run's age, slots and slots used, the queue's
    depth, runs dispatching, the parked envelopes' bytes and the leases no worker runs."""

    def __init__(self, redis_client: redis.Redis, queue: str = "") -> None:
        self._redis, self._queue = redis_client, queue

    def collect(self) -> Iterator[Any]:
        """Seven unlabelled gauges."""
        from prometheus_client.core import GaugeMetricFamily

        state = queue_state(self._redis, time.time(), self._queue)
        yield GaugeMetricFamily(
            "toolrunner_oldest_waiting_seconds",
            "Age of the oldest run parked for a slot (0 when none waits), fleet-wide",
            value=state.oldest_waiting_seconds,
        )
        yield GaugeMetricFamily("toolrunner_slots", "Worker slots of the live workers, fleet-wide", value=state.slots)
        yield GaugeMetricFamily(
            "toolrunner_slots_used", "Slots held by a live lease, fleet-wide", value=state.slots_used
        )
        yield GaugeMetricFamily("toolrunner_queue_depth", "Messages in the run queue, fleet-wide", value=state.queued)
        yield GaugeMetricFamily(
            "toolrunner_runs_dispatching", "Runs picked for a slot, their message on its way", value=state.dispatching
        )
        yield GaugeMetricFamily(
            "toolrunner_parked_envelope_bytes", "Redis memory of the parked runs' envelopes", value=state.parked_bytes
        )
        yield GaugeMetricFamily(
            "toolrunner_orphaned_leases", "Live leases no worker runs (its worker died)", value=state.orphaned_leases
        )


def watched_directories(artifact_url: str) -> dict[str, Path]:
    """The directories whose filesystems must keep room: the outputs' spool (the temp dir), a file artifact store."""
    directories = {"spool": Path(tempfile.gettempdir())}
    if urlsplit(artifact_url).scheme == "file":
        directories["artifacts"] = Path(urlsplit(artifact_url).path)
    return directories


def free_bytes(directory: Path) -> int:
    """Free bytes, for an unprivileged process, on the filesystem that holds `directory` (or will, once made)."""
    existing = next(path for path in (directory, *directory.parents) if path.exists())
    return shutil.disk_usage(existing).free


class DiskCollector:
    """`toolrunner_free_disk_bytes{path}` of each watched directory; `path` is the directory itself (at most two)."""

    def __init__(self, directories: Mapping[str, Path]) -> None:
        self._directories = dict(directories)

    def collect(self) -> Iterator[Any]:
        """One gauge family, a sample per directory."""
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "toolrunner_free_disk_bytes",
            "Free bytes on the filesystem of the spool and artifact directories",
            labels=["path"],
        )
        for directory in self._directories.values():
            try:
                family.add_metric([str(directory)], free_bytes(directory))
            except OSError as exc:
                logger.warning("free disk of %s unreadable: %s", directory, exc)
        yield family


def certificate_expiry(pem: bytes) -> float:
    """The notAfter of a PEM certificate, as a Unix timestamp (pure)."""
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc.timestamp()


class CertificateCollector:
    """`toolrunner_dind_certificate_expiry_timestamp_seconds{certificate}`: the client certificate and CA on disk."""

    def __init__(self, files: Mapping[str, Path]) -> None:
        self._files = dict(files)

    def collect(self) -> Iterator[Any]:
        """One gauge family, a sample per readable certificate (`client`, `ca`)."""
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "toolrunner_dind_certificate_expiry_timestamp_seconds",
            "notAfter of the TLS client certificate and CA the worker's Docker client loads",
            labels=["certificate"],
        )
        for name, path in self._files.items():
            try:
                family.add_metric([name], certificate_expiry(path.read_bytes()))
            except (OSError, ValueError) as exc:
                logger.warning("certificate %s (%s) unreadable: %s", name, path, exc)
        yield family
