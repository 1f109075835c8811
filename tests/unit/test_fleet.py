"""`toolrunner status`'s view of the fleet: the alerts it says are firing (pure), and its read of a real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from config import Settings
from tasks.worker import fairshare, fleet, keys
from tasks.worker.health import QueueState
from tests.conftest import database_url, flushed_database
from tests.unit.helpers import envelope, register

GIB = 1 << 30
HEALTHY = fleet.WorkerView("w@h", 4, 4, 1, "ENGINE", "", {"/tmp": 50 * GIB}, "", 30.0)
PAUSED = fleet.WorkerView("w@h", 0, 4, paused="/tmp has 1.0 GiB free")
LOW = fleet.WorkerView("w@h", 4, free_disk={"/tmp": 19 * GIB})


@pytest.fixture
def conn(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_database(database_url(redis_url, 10)) as client:
        yield client


@pytest.mark.parametrize(
    ("workers", "state", "firing"),
    [
        ([HEALTHY], QueueState(60.0, 4, 1), []),
        ([], QueueState(0.0, 0, 0), ["no live worker"]),
        ([HEALTHY], QueueState(16 * 60.0, 4, 1), ["queue stuck: a run waits 16 min while 3 slots are free"]),
        ([HEALTHY], QueueState(16 * 60.0, 4, 4), []),  # every slot busy: waiting, not stuck
        ([PAUSED], QueueState(0.0, 0, 0), ["disk low: w@h takes no runs: /tmp has 1.0 GiB free"]),
        ([LOW], QueueState(0.0, 4, 0), ["disk low: w@h: /tmp 19.0 GiB free"]),
        ([fleet.WorkerView("w@h", 4, reaped_seconds_ago=301.0)], QueueState(0.0, 4, 0), ["not reaping: w@h"]),
        ([HEALTHY], QueueState(0.0, 4, 2, orphaned_leases=1), ["1 leases held by no live worker"]),
    ],
)
def test_the_alerts_status_says_are_firing(
    workers: list[fleet.WorkerView], state: QueueState, firing: list[str]
) -> None:
    said = fleet.alerts(workers, state)
    assert len(said) == len(firing) and all(line.startswith(start) for line, start in zip(said, firing, strict=True))


def test_the_fleet_is_read_from_the_registry_the_workers_records_and_fair_share(conn: redis.Redis) -> None:
    register(conn, 2)  # "w|2", as a worker's safety net registers
    conn.hset(keys.WORKER("w"), mapping={"slots": 2, "busy": 1, "daemon": "ABC", "free:/tmp": 40 * GIB, "paused": ""})
    conn.set(keys.DRAINING("w"), "warm")
    settings = Settings(tenant_max_running=1, lease_ttl_seconds=30)
    for task_id in ("a1", "a2", "a3", "b1"):
        fairshare.admit(conn, envelope(task_id, task_id[0]), settings)
    seen = fleet.read(conn, "q", time.time())
    assert [(w.name, w.slots, w.busy, w.daemon, w.draining, w.free_disk) for w in seen.workers] == [
        ("w", 2, 1, "ABC", "warm", {"/tmp": 40 * GIB})
    ]
    assert seen.tenants == [{"tenant": "a", "running": 1, "waiting": 2}, {"tenant": "b", "running": 1, "waiting": 0}]
    assert (seen.queue.slots, seen.queue.slots_used) == (2, 2)
    assert seen.alerts == ["2 leases held by no live worker (they end within a lease TTL)"], "no run lock: nobody runs"


def test_a_workers_own_gauges_say_whether_it_is_paused_and_what_its_reaper_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tasks.worker import diskguard, reaper

    monkeypatch.setattr(reaper, "last_pass", reaper.LastPass(at=time.time(), past_deadline=3))
    gauges = {f.name: f.samples[0].value for f in diskguard.WorkerCollector().collect()}
    assert gauges == {"toolrunner_worker_paused": 0, "toolrunner_runs_past_deadline": 3}
