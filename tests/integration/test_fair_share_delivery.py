"""A parked run's lifecycle with a real worker: a cancel after its pick is final, a lost lease puts a run back.

Security review 2, items 1 and 8, where delivery is involved: the Lua paths themselves are in
tests/unit/test_fair_share_lifecycle.py.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import redis
from celery import Celery

from bench.launch import Worker, start_worker, wait_until
from config import Settings, celery_config, load_settings
from tasks import run_tool
from tasks.worker import fairshare, keys, parking, safetynet
from tasks.worker.cancel import cancel
from tasks.worker.delivery import Delivery, claim_identity
from tasks.worker.limits import set_limit
from tests.conftest import REDIS_URL, database_url, flushed_database
from tests.integration.helpers import tool_containers

pytestmark = pytest.mark.integration
LIFE_DB = database_url(REDIS_URL, 10)
ENV = {"TOOLRUNNER_BROKER_URL": LIFE_DB, "TOOLRUNNER_TENANT_MAX_RUNNING": "1", "TOOLRUNNER_LEASE_TTL_SECONDS": "6"}


@pytest.fixture
def conn() -> Iterator[redis.Redis]:
    with flushed_database(LIFE_DB) as client:
        yield client


@pytest.fixture
def producer(conn: redis.Redis, docker_client: docker.DockerClient, busybox_image: str) -> Iterator[Celery]:
    app = Celery("lifecycle-client", set_as_current=False)
    app.conf.update(celery_config(load_settings()), broker_url=LIFE_DB, result_backend=LIFE_DB)
    yield app
    app.close()


def settings() -> Settings:
    return Settings(broker_url=LIFE_DB, tenant_max_running=1, lease_ttl_seconds=6)


def test_a_run_cancelled_right_after_its_pick_never_runs_even_once_its_cancel_has_expired(
    conn: redis.Redis, producer: Celery, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    queue = f"pick-{secrets.token_hex(3)}"
    task_id = f"picked-{secrets.token_hex(4)}"
    run = ["script", "pick", "picked", {"script": "echo ran > /outputs/out.txt"}]
    claim_identity(conn, Delivery(task_id, "script", "pick", "picked"), ttl=settings().identity_ttl)
    conn.zadd(keys.WORKERS(), {"elsewhere|4": int(time.time() * 1000) + 60_000})
    holder = parking.Envelope("holder", "toolrunner.run_tool", [], {}, queue, "pick", "script")
    assert fairshare.admit(conn, holder, settings()).admitted  # the tenant's only slot, held
    waiting = parking.Envelope(task_id, "toolrunner.run_tool", run, {}, queue, "pick", "script")
    assert not fairshare.admit(conn, waiting, settings()).admitted
    picked = fairshare.release(conn, holder, settings())  # the holder ends: the parked run is picked...
    assert picked == [task_id]
    parking.publish(producer, parking.load(conn, picked))  # ...and its message published, not yet consumed
    outcome = cancel(producer, conn, settings(), task_id, "pick")  # the tenant cancels it right then
    assert outcome.message.endswith("cancelled while it waited; it will not start")
    conn.delete(keys.CANCEL(task_id, "pick"))  # a day later the cancel key is gone
    assert safetynet.sweep_parked(producer, conn, settings()) == 0, "nothing is left to republish"
    events = docker_client.events(decode=True, filters={"label": [f"studio.task={task_id}"]})
    worker = start_worker(tmp_path, queue, concurrency=1, env=ENV, queues=queue, client=producer)
    try:
        wait_until(lambda: f"task={task_id} already ended" in worker.log_text(), 60, "the late copy to be dropped")
    finally:
        worker.stop()
        events.close()
    assert list(events) == [], "no volume or container was ever made for it"
    assert producer.AsyncResult(task_id).state == "REVOKED", "the dropped copy wrote nothing over it"
    assert not conn.hexists(keys.PARKED(), task_id) and conn.zscore(keys.DISPATCHING(), task_id) is None


def test_a_run_whose_lease_expired_and_whose_slot_was_taken_is_put_back_and_runs_later(
    conn: redis.Redis, producer: Celery, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    set_limit(conn, "lost", 1)
    worker = start_worker(tmp_path, "lost", concurrency=2, env=ENV, client=producer)
    try:
        params = {"script": "sleep 8; echo done > /outputs/out.txt", "timeout_seconds": 120}
        handle = producer.send_task("toolrunner.run_tool", ("script", "lost", "lost-1", params))
        wait_until(lambda: tool_containers(docker_client, "lost") == 1, 60, "the run's tool to start")
        # Redis lost the lease (an outage longer than its TTL) and another run of the tenant took the slot,
        # in one step, so the run's next renewal finds the tenant full.
        held = (keys.LEASES(), keys.TENANT_LEASES("lost"), keys.TENANT_LEASES("lost:script"))
        with conn.pipeline(transaction=True) as pipe:
            pipe.delete(*held)
            for key in held:
                pipe.zadd(key, {"intruder": int(time.time() * 1000) + 60_000})
            pipe.execute()
        intruder = parking.Envelope("intruder", "toolrunner.run_tool", [], {}, "celery", "lost", "script")
        wait_until(lambda: tool_containers(docker_client, "lost") == 0, 30, "the uncounted run to stop")
        assert f"task={handle.id} lost its lease and no slot is free" in worker.log_text()
        put_back = f"run put back on the queue (its tenant slot was lost) task={handle.id}"
        wait_until(lambda: put_back in worker.log_text(), 30, "the run to be put back")
        # The other run ends: the put-back run (parked meanwhile) is picked and published.
        parking.publish(producer, parking.load(conn, fairshare.release(conn, intruder, settings())))
        assert handle.get(timeout=120)["status"] == "ok"
    finally:
        worker.stop()


def test_a_picked_run_whose_message_expired_is_revoked_by_celery_and_leaves_nothing_parked(
    conn: redis.Redis, producer: Celery, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    queue = f"expired-{secrets.token_hex(3)}"
    task_id = f"stale-{secrets.token_hex(4)}"
    claim_identity(conn, Delivery(task_id, "script", "stale", "stale"), ttl=settings().identity_ttl)
    conn.zadd(keys.WORKERS(), {"elsewhere|4": int(time.time() * 1000) + 60_000})
    holder = parking.Envelope("holder", "toolrunner.run_tool", [], {}, queue, "stale", "script")
    assert fairshare.admit(conn, holder, settings()).admitted
    run = ["script", "stale", "stale", {"script": "echo ran > /outputs/out.txt"}]
    # The producer's expiry passed while the run waited parked: Celery must drop it, never run it.
    waiting = parking.Envelope(task_id, "toolrunner.run_tool", run, {}, queue, "stale", "script",
                               expires="2020-01-01T00:00:00+00:00")  # fmt: skip
    assert not fairshare.admit(conn, waiting, settings()).admitted
    parking.publish(producer, parking.load(conn, fairshare.release(conn, holder, settings())))
    events = docker_client.events(decode=True, filters={"label": [f"studio.task={task_id}"]})
    worker = start_worker(tmp_path, queue, concurrency=1, env=ENV, queues=queue, client=producer)
    try:
        wait_until(lambda: producer.AsyncResult(task_id).state == "REVOKED", 60, "Celery to revoke the expired run")
        wait_until(lambda: not conn.hexists(keys.PARKED(), task_id), 10, "its parked state to end")
    finally:
        worker.stop()
        events.close()
    assert list(events) == []
    assert conn.zscore(keys.DISPATCHING(), task_id) is None and conn.zscore(keys.LEASES(), task_id) is None


def test_a_sigkilled_workers_run_that_was_dispatched_from_its_tenants_list_completes_on_another_worker(
    conn: redis.Redis, producer: Celery, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    """Issue 22, item 1: the run's second delivery used to be dropped as "parked already" and left STARTED."""
    tenant = f"killed-{secrets.token_hex(3)}"
    # Shrunk timing (a dead worker's messages come back 10 s after its last beat, its lease 6 s after its
    # last renewal); test_run_control_crash shows the two-minute bound of a plain run with the defaults.
    env = {**ENV, "TOOLRUNNER_VISIBILITY_TIMEOUT_SECONDS": "10", "TOOLRUNNER_VISIBILITY_HEARTBEAT_SECONDS": "3"}
    doomed = start_worker(tmp_path / "doomed", f"doomed-{tenant}", concurrency=2, env=env, client=producer)
    since = time.time()
    try:
        first = {"script": "sleep 2", "timeout_seconds": 60}
        holder = producer.send_task("toolrunner.run_tool", ("script", tenant, "holder", first))
        wait_until(lambda: tool_containers(docker_client, tenant) == 1, 60, "the holder's tool to start")
        # Queued behind a full tenant: parked in its list, then picked and published again when the holder ends.
        params = {"script": "echo started > /outputs/out.txt; sleep 6; echo done >> /outputs/out.txt"}
        handle = producer.send_task(
            "toolrunner.run_tool", ("script", tenant, "dispatched", {**params, "timeout_seconds": 60})
        )
        wait_until(lambda: conn.hexists(keys.PARKED(), handle.id), 30, "the run to wait in its tenant's list")
        assert holder.get(timeout=60)["status"] == "ok"
        wait_until(lambda: _tool_of(docker_client, handle.id), 60, "the dispatched run's tool to start")
        doomed.kill_group()
        killed_at = time.monotonic()
    finally:
        doomed.stop()
    survivor = start_worker(tmp_path / "survivor", f"survivor-{tenant}", concurrency=2, env=env, client=producer)
    try:
        result = handle.get(timeout=max(1.0, 120 - (time.monotonic() - killed_at)))  # docs/operations.md's bound
        assert f"task={handle.id} is parked already" not in survivor.log_text()
        assert f"task={handle.id} was delivered again: first in its tenant's line" in survivor.log_text()
    finally:
        survivor.stop()
    assert result["status"] == "ok" and [f["line"] for f in result["findings"]] == ["started", "done"]
    starts = docker_client.events(
        since=int(since) - 1, until=int(time.time()) + 1, decode=True,
        filters={"type": "container", "event": "start", "label": [f"studio.task={handle.id}", "studio.role=tool"]},
    )  # fmt: skip
    assert len(list(starts)) == 2, "its tool started on the dead worker, then once more on the survivor"
    assert survivor.log_text().count(f"run_tool[{handle.id}] succeeded") == 1
    assert not conn.hexists(keys.PARKED(), handle.id) and conn.zscore(keys.LEASES(), handle.id) is None


def _tool_of(client: docker.DockerClient, task_id: str) -> bool:
    return bool(client.api.containers(filters={"label": [f"studio.task={task_id}", "studio.role=tool"]}))


@pytest.mark.parametrize(
    ("tool", "params"), [("script", {"script": "echo ok > /outputs/out.txt"}), ("absent", {})], ids=["ok", "failure"]
)
def test_a_runs_final_state_is_stored_before_its_slot_is_let_go_and_it_is_marked_done(
    worker: Worker, redis_url: str, tool: str, params: dict[str, str]
) -> None:
    """Issue 22, item 1: letting go of the slot marks the run done, and a later copy of its message is dropped
    for that. Were the worker killed between the two, the run would stay PROGRESS for ever: so the final state
    (SUCCESS, or FAILURE: an image that exists nowhere) comes first, in the order Redis executed them."""
    task_id = f"ordered-{secrets.token_hex(4)}"
    commands: list[str] = []
    with redis.Redis.from_url(redis_url) as conn, conn.monitor() as monitor:
        watching = threading.Thread(target=_record, args=(monitor, task_id, commands), daemon=True)
        watching.start()
        handle = run_tool.apply_async((tool, "ordered", task_id, params), task_id=task_id)
        with contextlib.suppress(Exception):
            handle.get(timeout=90)
        marked = f"SET toolrunner:fs:done:{task_id} "
        wait_until(lambda: any(c.startswith(marked) for c in commands), 10, "the run to be marked done")
    stored = f"SETEX celery-task-meta-{task_id} "
    final = [i for i, c in enumerate(commands) if c.startswith(stored) and '"status": "PROGRESS"' not in c]
    done = [i for i, c in enumerate(commands) if c.startswith(marked)]
    assert final and final[0] < done[0], commands


def _record(monitor: Any, task_id: str, into: list[str]) -> None:
    with contextlib.suppress(Exception):  # the monitor's connection closes at the end of the test
        for command in monitor.listen():
            if task_id in command["command"]:
                into.append(command["command"])
