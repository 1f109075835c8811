"""Integration fixtures: every test here must leave no labelled volume or container behind."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import redis

from bench.launch import Worker, free_port, start_worker, wait_until
from tests.conftest import LABEL_PREFIX
from tests.integration.helpers import pings

MANAGED = {"label": [f"{LABEL_PREFIX}.managed=true"]}


def managed_resources(client: docker.DockerClient) -> set[str]:
    """Names of every managed volume and id of every managed container on the engine."""
    volumes = {f"volume:{v['Name']}" for v in client.api.volumes(filters=MANAGED).get("Volumes") or []}
    containers = {f"container:{c['Id'][:12]}" for c in client.api.containers(all=True, filters=MANAGED)}
    return volumes | containers


@pytest.fixture(autouse=True)
def nothing_left_behind(docker_client: docker.DockerClient) -> Iterator[None]:
    """Fail the test if it leaves a managed volume or container that was not there before it."""
    before = managed_resources(docker_client)
    yield
    left = managed_resources(docker_client) - before
    assert not left, f"the test left managed resources behind: {sorted(left)}"


@pytest.fixture
def make_container(docker_client: docker.DockerClient) -> Iterator[Callable[..., str]]:
    """A factory of containers (not necessarily started) that are force-removed at teardown."""
    made: list[str] = []

    def make(image: str, command: list[str], *, start: bool = False, **options: object) -> str:
        container = docker_client.containers.create(image, command, **options)
        made.append(container.id)
        if start:
            container.start()
        return str(container.id)

    yield make
    for container_id in made:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.api.remove_container(container_id, force=True)


@pytest.fixture
def make_volume(docker_client: docker.DockerClient) -> Iterator[Callable[..., str]]:
    """A factory of raw Docker volumes (for sweep tests) that are removed at teardown."""
    made: list[str] = []

    def make(name: str, labels: dict[str, str] | None = None) -> str:
        docker_client.volumes.create(name=name, labels=labels or {})
        made.append(name)
        return name

    yield make
    for name in made:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.api.remove_volume(name, force=True)


@pytest.fixture(scope="session")
def worker(
    redis_url: str, docker_client: docker.DockerClient, busybox_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    """One real prefork worker (concurrency 4) shared by the task tests, on a flushed Redis database."""
    with redis.Redis.from_url(redis_url) as conn:
        conn.flushdb()
    port = free_port()
    running = start_worker(tmp_path_factory.mktemp("workers"), "tasks", env={"TOOLRUNNER_METRICS_PORT": str(port)})
    running.metrics_url = f"http://127.0.0.1:{port}/metrics"
    yield running
    running.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A Redis of this test's own, with an append-only file, that the test can restart."""
    port = free_port()
    command = [
        "redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(tmp_path),
        "--appendonly", "yes", "--appendfsync", "always", "--save", "",
    ]  # fmt: skip
    processes = [subprocess.Popen(command, stdout=subprocess.DEVNULL)]

    def restart(pause: float) -> None:
        redis.Redis(port=port).shutdown(nosave=False)
        processes[0].wait(30)
        time.sleep(pause)
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))

    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: pings(url), 10, "redis to start")
    yield url, restart
    processes[-1].terminate()
    processes[-1].wait(30)
