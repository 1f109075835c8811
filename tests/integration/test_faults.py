"""Faults with real worker processes, Redis and Docker: killed workers, suicidal tasks, a restarted Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import redis
from celery import Celery

from bench.launch import start_worker, wait_until
from tasks.worker import keys
from tasks.worker.delivery import Delivery
from tests.conftest import REDIS_URL
from tests.integration.helpers import SHORT_LIMITS, client_app, double_runs, final_state, pings

pytestmark = pytest.mark.integration
# The same Redis server as the rest of the suite, another database.
FAULT_DB = REDIS_URL.rsplit("/", 1)[0] + "/12"


@pytest.fixture
def faults(redis_url: str, docker_client: docker.DockerClient, busybox_image: str) -> Iterator[Celery]:
    with redis.Redis.from_url(FAULT_DB) as conn:
        conn.flushdb()
    producer = client_app(FAULT_DB)
    yield producer
    producer.close()


def running_tool_containers(client: docker.DockerClient, run_id: str) -> list[dict[str, Any]]:
    return client.api.containers(filters={"label": [f"studio.run={run_id}", "studio.role=tool"]})


def test_a_run_whose_worker_is_sigkilled_completes_exactly_once_and_leaves_nothing(
    faults: Celery, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    env = {"TOOLRUNNER_BROKER_URL": FAULT_DB, **SHORT_LIMITS}
    first = start_worker(tmp_path / "a", "crashy", env=env, concurrency=1, client=faults)
    params = {"script": "echo started > /outputs/out.txt; sleep 6; echo done >> /outputs/out.txt"}
    handle = faults.send_task("toolrunner.run_tool", ("script", "acme", "sigkill-1", params))
    wait_until(lambda: running_tool_containers(docker_client, "sigkill-1"), 60, "the tool to start")

    first.kill_group()
    assert running_tool_containers(docker_client, "sigkill-1"), "the orphaned tool should still run"
    second = start_worker(tmp_path / "b", "crashy", env=env, concurrency=1, client=faults)
    try:
        # The successor's start-up sweep removed what the killed worker left, before taking any task.
        assert "predecessor" in second.log_text()
        leftovers = docker_client.api.volumes(filters={"label": ["studio.run=sigkill-1"]})["Volumes"]
        assert not leftovers and not running_tool_containers(docker_client, "sigkill-1")
        result = handle.get(timeout=180)
    finally:
        second.stop()
    assert result["status"] == "ok"
    assert [f["line"] for f in result["findings"]] == ["started", "done"]
    with redis.Redis.from_url(FAULT_DB) as conn:
        key = Delivery(handle.id, "script", "acme", "sigkill-1").key
        assert int(conn.get(keys.DELIVERIES(key)) or 0) == 2
    logs = first.log_text() + second.log_text()
    assert logs.count(f"run_tool[{handle.id}] succeeded") == 1


def test_a_task_that_kills_its_worker_every_time_stops_after_the_redelivery_cap(faults: Celery, tmp_path: Path) -> None:
    env = {"TOOLRUNNER_BROKER_URL": FAULT_DB, "TOOLRUNNER_MAX_REDELIVERIES": "2"}
    worker = start_worker(tmp_path, "suicidal", env=env, concurrency=1, client=faults)
    try:
        handle = faults.send_task("toolrunner.run_tool", ("suicide", "acme", "suicide-1", {}))
        with pytest.raises(Exception, match=r"delivered 4 times .* giving up after 2 redeliveries"):
            handle.get(timeout=180)
        assert handle.state == "FAILURE"
    finally:
        worker.stop()
    assert worker.log_text().count("WorkerLostError") >= 3


def test_a_redis_restart_with_tasks_queued_and_running_loses_none_and_runs_none_twice_at_once(
    own_redis: tuple[str, Any], docker_client: docker.DockerClient, busybox_image: str, tmp_path: Path
) -> None:
    url, restart = own_redis
    producer = client_app(url)
    worker = start_worker(tmp_path, "reconnect", env={"TOOLRUNNER_BROKER_URL": url, **SHORT_LIMITS}, client=producer)
    with double_runs(docker_client, "reconnect") as overlaps:
        try:
            params = {"script": "sleep 2; echo ok > /outputs/out.txt"}
            handles = [
                producer.send_task("toolrunner.run_tool", ("script", "reconnect", f"r-{i}", params)) for i in range(8)
            ]
            wait_until(lambda: docker_client.api.containers(filters={"label": ["studio.tenant=reconnect"]}), 60, "runs")
            restart(pause=1.0)
            wait_until(lambda: pings(url), 10, "redis to come back")
            states = [final_state(producer, h.id) for h in handles]
        finally:
            worker.stop()
            producer.close()
    assert "Unrecoverable error" not in worker.log_text()  # the consumer reconnected (tasks/worker/broker.py)
    assert overlaps == []
    assert states == ["SUCCESS"] * len(handles)


@pytest.mark.timeout(300)
def test_a_run_going_on_across_a_redis_restart_is_not_delivered_again_when_it_outlives_the_visibility_timeout(
    own_redis: tuple[str, Any], docker_client: docker.DockerClient, busybox_image: str, tmp_path: Path
) -> None:
    # Its message was delivered on the channel the reconnect left behind; the heartbeat must keep renewing it.
    url, restart = own_redis
    producer = client_app(url)
    env = {"TOOLRUNNER_BROKER_URL": url, **SHORT_LIMITS, "TOOLRUNNER_MAX_TIMEOUT_SECONDS": "60"}
    worker = start_worker(tmp_path, "outlives", env=env, client=producer)
    # 16 s of visibility and a 10 s restore interval after the restart: a 40 s run outlives both.
    params = {"script": "sleep 40; echo ok > /outputs/out.txt", "timeout_seconds": 55}
    try:
        handle = producer.send_task("toolrunner.run_tool", ("script", "outlives", "r-1", params))
        with_label = {"label": ["studio.role=tool", "studio.tenant=outlives"]}
        wait_until(lambda: docker_client.api.containers(filters=with_label), 60, "the run's tool")
        restart(pause=1.0)
        state = final_state(producer, handle.id)
    finally:
        worker.stop()
        producer.close()
    assert state == "SUCCESS"
    assert worker.log_text().count(f"run_tool[{handle.id}] received") == 1
    with redis.Redis.from_url(url) as conn:
        assert int(conn.get(keys.DELIVERIES(Delivery(handle.id, "script", "outlives", "r-1").key)) or 0) == 1
