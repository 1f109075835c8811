"""The fleet at a glance, from Redis: what `toolrunner status` shows.

Workers are the live ones of fair share's registry (keys.WORKERS, renewed every 10 s) with what each one's record
says (keys.WORKER, written by its disk guard every 10 s: engine ID, slots, runs held, free disk, why it is paused,
its reaper's last pass) and whether it is draining (keys.DRAINING). Tenants are fair share's loads, busiest first.
The queue is health.queue_state. Alerts are the conditions of deploy/prometheus/alerts.yml that Redis can answer,
with the same thresholds: no live worker, the queue stuck, a disk low, a reaper silent.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from tasks.worker import fairshare, health, keys
from tasks.worker.luascript import text

TOP_TENANTS = 10
STUCK_SECONDS = 15 * 60  # ToolrunnerQueueStuck: the oldest waiting run older than this while slots are free
DISK_LOW_BYTES = 20 << 30  # ToolrunnerDiskLow
REAPER_SILENT_SECONDS = 5 * 60  # ToolrunnerReaperStalled


@dataclass(frozen=True)
class WorkerView:
    """One live worker."""

    name: str
    slots: int  # what it offers fair share now (0 while its disk guard pauses it)
    concurrency: int | None = None  # its pool's processes
    busy: int | None = None
    daemon: str = ""
    draining: str = ""
    free_disk: dict[str, int] = field(default_factory=dict)
    paused: str = ""
    reaped_seconds_ago: float | None = None
    queues: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Fleet:
    """Everything `toolrunner status` prints."""

    workers: list[WorkerView]
    tenants: list[dict[str, Any]]
    queue: health.QueueState
    alerts: list[str]

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (`toolrunner status --json`)."""
        return asdict(self)


def read(redis_client: redis.Redis, queue: str, now: float | None = None) -> Fleet:
    """The fleet as Redis holds it now."""
    now = time.time() if now is None else now
    workers = _workers(redis_client, now)
    loads = sorted(fairshare.loads(redis_client), key=lambda load: (-(load.running + load.waiting), load.tenant_id))
    tenants = [{"tenant": load.tenant_id, "running": load.running, "waiting": load.waiting} for load in loads]
    state = health.queue_state(redis_client, now, queue)
    return Fleet(workers, tenants[:TOP_TENANTS], state, alerts(workers, state))


def _workers(redis_client: redis.Redis, now: float) -> list[WorkerView]:
    members = [text(m) for m in redis_client.zrangebyscore(keys.WORKERS(), int(now * 1000), "+inf")]
    slots: dict[str, int] = {}
    for member in members:
        name = member.rsplit("|", 1)[0]
        slots[name] = min(slots.get(name, health.slots_of(member)), health.slots_of(member))  # 0: paused
    names = sorted(slots)
    with redis_client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.WORKER(name))
            pipe.get(keys.DRAINING(name))
        replies = pipe.execute()
    views = []
    for name, raw, draining in zip(names, replies[::2], replies[1::2], strict=True):
        record = {text(k): text(v) for k, v in raw.items()}
        reaped = float(record["reaped"]) if record.get("reaped") else None
        views.append(WorkerView(
            name, slots[name], int(record["slots"]) if record.get("slots") else None,
            int(record["busy"]) if "busy" in record else None,
            record.get("daemon", ""), text(draining) if draining else "",
            {k.removeprefix("free:"): int(v) for k, v in record.items() if k.startswith("free:")},
            record.get("paused", ""), now - reaped if reaped else None,
            [q for q in record.get("queues", "").split(",") if q],
        ))  # fmt: skip
    return views


def alerts(workers: list[WorkerView], state: health.QueueState) -> list[str]:
    """The alert rules' conditions that Redis answers, each firing one as a line (pure)."""
    firing = []
    if not workers:
        firing.append("no live worker: nothing registered slots in the last minute")
    free = state.slots - state.slots_used
    if state.oldest_waiting_seconds > STUCK_SECONDS and free > 0:
        waited = state.oldest_waiting_seconds / 60
        firing.append(f"queue stuck: a run waits {waited:.0f} min while {free} slots are free")
    for worker in workers:
        low = {path: bytes_ for path, bytes_ in worker.free_disk.items() if bytes_ < DISK_LOW_BYTES}
        if worker.paused:
            firing.append(f"disk low: {worker.name} takes no runs: {worker.paused}")
        elif low:
            said = ", ".join(f"{path} {free_bytes / (1 << 30):.1f} GiB free" for path, free_bytes in low.items())
            firing.append(f"disk low: {worker.name}: {said}")
        if worker.reaped_seconds_ago is not None and worker.reaped_seconds_ago > REAPER_SILENT_SECONDS:
            firing.append(f"not reaping: {worker.name}'s last reaper pass was {worker.reaped_seconds_ago:.0f} s ago")
    if state.orphaned_leases:
        firing.append(f"{state.orphaned_leases} leases held by no live worker (they end within a lease TTL)")
    return firing
