"""The sweep as tasks: fanned out to every live worker, locked per daemon, and run at worker start."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
import redis

from bench.launch import Worker, start_worker
from tasks import app, sweep_all, sweep_daemon
from tasks.worker import keys
from tests.integration.helpers import aged_labels, volume_exists

pytestmark = pytest.mark.integration
WAIT = 120


def test_the_scheduled_sweep_reaches_every_worker_and_removes_aged_volumes(
    worker: Worker, docker_client: docker.DockerClient, make_volume: Callable[..., str]
) -> None:
    aged = make_volume("sweep-task-aged", aged_labels("t1", 30))
    young = make_volume("sweep-task-young", aged_labels("t1", 1))
    sent = sweep_all.delay(24).get(timeout=WAIT)["workers"]
    assert any(name.startswith("tasks@") for name in sent)
    reports = [app.AsyncResult(task_id).get(timeout=WAIT) for task_id in sent.values()]
    assert any(aged in report.get("removed", []) for report in reports)
    assert all(report["daemon"] == docker_client.info()["ID"] for report in reports)
    assert not volume_exists(docker_client, aged) and volume_exists(docker_client, young)


def test_a_sweep_is_skipped_while_another_sweep_of_the_same_daemon_holds_the_lock(
    worker: Worker, docker_client: docker.DockerClient, redis_url: str, make_volume: Callable[..., str]
) -> None:
    aged = make_volume("sweep-task-locked", aged_labels("t2", 30))
    with redis.Redis.from_url(redis_url) as conn:
        lock = conn.lock(keys.SWEEP_LOCK(docker_client.info()["ID"]), timeout=60)
        assert lock.acquire(blocking=False)
        try:
            report = sweep_daemon.delay(24).get(timeout=WAIT)
        finally:
            lock.release()
    assert report["skipped"] == "another sweep of this daemon is running"
    assert volume_exists(docker_client, aged)


def test_a_starting_worker_removes_what_its_crashed_predecessor_left_whatever_its_age(
    worker: Worker,
    docker_client: docker.DockerClient,
    busybox_image: str,
    make_volume: Callable[..., str],
    tmp_path: Path,
) -> None:
    hostname = f"pred@{socket.gethostname()}"
    labels = aged_labels("t3", 0.1, **{"studio.worker": hostname})
    left_volume = make_volume("sweep-predecessor", labels)
    left_container = docker_client.containers.create(busybox_image, ["true"], labels=labels)
    other = make_volume("sweep-other-worker", aged_labels("t3", 0.1, **{"studio.worker": "someone@else"}))
    successor = start_worker(tmp_path, "pred", concurrency=1)
    successor.stop()
    assert not volume_exists(docker_client, left_volume)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(left_container.id)
    assert volume_exists(docker_client, other)
    assert "sweep daemon=" in successor.log_text()
