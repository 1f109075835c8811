"""Against a real Docker-in-Docker daemon: a worker's bind mount arrives empty, the project's named volumes do not."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import redis

from bench.launch import DIND_IMAGE, InnerDaemon, Worker, inner_daemon, start_worker, wait_until
from isolation import IsolatedContainerVolume, cleanup_orphaned_volumes
from tasks import run_tool
from tasks.worker.limits import set_limit, unset_limit
from tests.conftest import LABEL_PREFIX
from tests.integration.helpers import aged_labels, volume_exists

pytestmark = pytest.mark.integration
WAIT = 120
QUEUE = "dind"
SECRET = "through dind\n"
MANAGED = {"label": [f"{LABEL_PREFIX}.managed=true"]}


@pytest.fixture(scope="module")
def dind(docker_client: docker.DockerClient, busybox_image: str) -> Iterator[InnerDaemon]:
    """A Docker daemon running inside a container of the host engine, with the busybox image loaded."""
    try:
        docker_client.images.get(DIND_IMAGE)
    except docker.errors.ImageNotFound:
        message = f"the image {DIND_IMAGE} is not available; build it with scripts/build-images dind"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with inner_daemon(docker_client, [busybox_image]) as daemon:
        print(
            f"\n[dind] inner dockerd answered {daemon.startup_seconds:.2f}s after the start of the fixture; "
            f"{busybox_image} loaded in {daemon.load_seconds:.2f}s"
        )
        yield daemon


@pytest.fixture(autouse=True)
def nothing_left_on_the_inner_daemon(dind: InnerDaemon) -> Iterator[None]:
    """The inner daemon's counterpart of nothing_left_behind, which only looks at the host engine."""
    before = managed_on(dind.client)
    yield
    left = managed_on(dind.client) - before
    assert not left, f"the test left managed resources behind on the inner daemon: {sorted(left)}"


@pytest.fixture(scope="module")
def dind_worker(dind: InnerDaemon, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A real worker whose DOCKER_HOST is the inner daemon, on a queue of its own."""
    env = {"DOCKER_HOST": dind.docker_host}
    running = start_worker(tmp_path_factory.mktemp("dind"), "dind", env=env, queues=QUEUE, concurrency=1)
    yield running
    running.stop()


def managed_on(client: docker.DockerClient) -> set[str]:
    """Managed volumes and containers on client's daemon, counted as nothing_left_behind counts the host's."""
    # Not imported from tests/integration/conftest.py: pytest has loaded it as `conftest`, and an import
    # would execute it a second time as another module.
    volumes = {f"volume:{v['Name']}" for v in client.api.volumes(filters=MANAGED).get("Volumes") or []}
    return volumes | {f"container:{c['Id'][:12]}" for c in client.api.containers(all=True, filters=MANAGED)}


def run_busybox(client: docker.DockerClient, image: str, command: list[str], **options: Any) -> str:
    """Run a container to its end on client's daemon and return its output; it is removed whatever happens."""
    container = client.containers.create(image, command, network_mode="none", **options)
    try:
        container.start()
        container.wait(timeout=WAIT)
        return bytes(container.logs()).decode()
    finally:
        container.remove(force=True)


def test_a_worker_directory_bind_mounted_on_the_inner_daemon_arrives_empty(
    dind: InnerDaemon, docker_client: docker.DockerClient, busybox_image: str, tmp_path: Path
) -> None:
    (tmp_path / "in.txt").write_text(SECRET)
    bind = {str(tmp_path): {"bind": "/inputs", "mode": "ro"}}
    command = ["sh", "-c", "echo listing:; ls -A /inputs; test -e /inputs/in.txt && echo present || echo absent"]

    on_host = run_busybox(docker_client, busybox_image, command, volumes=bind)
    on_inner = run_busybox(dind.client, busybox_image, command, volumes=bind)

    assert on_host.split() == ["listing:", "in.txt", "present"], "control: the host daemon sees the worker's file"
    # The inner daemon resolves the path in its own filesystem and silently creates an empty directory there.
    assert on_inner.split() == ["listing:", "absent"]


def test_a_named_volume_carries_the_same_file_intact_on_the_inner_daemon(dind: InnerDaemon, busybox_image: str) -> None:
    with IsolatedContainerVolume("acme", "dind-volume", client=dind.client) as volume:
        volume.initialize({"in.txt": SECRET})
        out = run_busybox(dind.client, busybox_image, ["cat", "/inputs/in.txt"], mounts=[volume.get_volume_config()])
    assert out == SECRET


def test_a_worker_whose_docker_host_is_the_inner_daemon_runs_a_tool_there_and_leaves_nothing(
    dind: InnerDaemon, dind_worker: Worker, docker_client: docker.DockerClient
) -> None:
    since = datetime.now(UTC)
    params = {"script": "cat /inputs/in.txt > /outputs/out.txt", "outputs": ["out.txt"]}
    handle = run_tool.apply_async(("script", "acme", "dind-1", params, {"in.txt": SECRET}), queue=QUEUE)
    result = handle.get(timeout=WAIT)
    until = datetime.now(UTC)

    assert result["status"] == "ok", result
    assert {"file": "out.txt", "line": "through dind"} in result["findings"]
    created = {"type": "container", "event": "create", "label": "studio.run=dind-1"}
    assert _events(dind.client, since, until, created), "the run's containers were not created on the inner daemon"
    assert not _events(docker_client, since, until, created), "the run's containers were created on the host"
    assert managed_on(dind.client) == set()


def test_the_sweep_of_the_inner_daemon_removes_its_aged_volume_and_leaves_the_hosts_alone(
    dind: InnerDaemon, docker_client: docker.DockerClient, make_volume: Callable[..., str]
) -> None:
    # One name and one set of labels on both daemons: only the client given to the sweep tells them apart.
    name, labels = f"sweep-dind-{secrets.token_hex(4)}", aged_labels("acme", 30)
    dind.client.volumes.create(name=name, labels=labels)
    try:
        make_volume(name, labels)
        report = cleanup_orphaned_volumes(24, dind.client)
        assert report.removed == (name,) and report.failed == ()
        assert not volume_exists(dind.client, name)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            dind.client.api.remove_volume(name, force=True)
    assert volume_exists(docker_client, name), "the sweep of the inner daemon removed the host's volume"


def _events(client: docker.DockerClient, since: datetime, until: datetime, filters: dict[str, str]) -> list[Any]:
    # Whole seconds, widened by one each way: the daemon compares event times at second granularity.
    start, end = int(since.timestamp()) - 1, int(until.timestamp()) + 1
    return list(client.events(since=start, until=end, filters=filters, decode=True))


def wait_for_daemon(daemon: InnerDaemon, timeout: float = 60) -> None:
    """Wait until the inner daemon answers again after a restart.

    The SDK leaks its socket when a connect fails (no socket file yet, or nothing listening), so a plain
    socket of our own, always closed, probes the listener before the client is used again.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            listening = probe.connect_ex(str(daemon.socket)) == 0
        if listening:
            with contextlib.suppress(docker.errors.DockerException):
                if daemon.client.ping():
                    return
        time.sleep(0.2)
    raise AssertionError("the inner daemon did not come back")


def test_a_run_whose_docker_daemon_restarts_mid_run_is_retried_and_leaves_nothing(
    dind: InnerDaemon, dind_worker: Worker, docker_client: docker.DockerClient
) -> None:
    params = {"script": "echo a > /outputs/out.txt; sleep 6; echo b >> /outputs/out.txt", "outputs": ["out.txt"]}
    handle = run_tool.apply_async(("script", "acme", "restart-1", params), queue=QUEUE)
    tool = {"label": ["studio.run=restart-1", "studio.role=tool"]}
    deadline = time.monotonic() + WAIT
    while not dind.client.api.containers(filters=tool) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert dind.client.api.containers(filters=tool), "the tool never started on the inner daemon"

    outer = docker_client.containers.get(dind.container_id)
    dind.client.api.close()  # drop pooled connections before the daemon goes: they would die unclosed
    outer.stop(timeout=10)  # the inner dockerd is the container's process: this stops the daemon
    outer.start()
    wait_for_daemon(dind)

    result = handle.get(timeout=WAIT)
    assert result["status"] == "ok"
    assert [f["line"] for f in result["findings"]] == ["a", "b"]
    # Either the first try's outputs came over the attach while the daemon stopped (it serves an attach as it goes
    # down) and its cleanup waited for the daemon to come back, or the try broke off and the retry removed what it
    # left: nothing stays either way.
    assert managed_on(dind.client) == set(), "the interrupted try's volumes were not removed"


def test_runs_admitted_and_dispatched_while_the_engine_restarts_are_retried_and_none_counts_as_a_worker_death(
    dind: InnerDaemon, docker_client: docker.DockerClient, redis_url: str, tmp_path: Path
) -> None:
    """Issue 22, item 2: a fresh pool process makes its engine client at its first run; an engine that is away then
    retries the run (it used to fail it at once, "raised unexpected"). With no redelivery allowed at all, a retry,
    a put-back or a re-dispatch that counted as a worker's death would fail its run too."""
    tenant, queue = f"restart-{secrets.token_hex(3)}", f"dind-restart-{secrets.token_hex(3)}"
    env = {"DOCKER_HOST": dind.docker_host, "TOOLRUNNER_MAX_REDELIVERIES": "0"}
    with redis.Redis.from_url(redis_url) as conn:
        set_limit(conn, tenant, 1)  # one at a time: the others park and are dispatched as each ends
    outer = docker_client.containers.get(dind.container_id)
    dind.client.api.close()
    outer.stop(timeout=10)  # the engine is away before the worker's pool processes made any client
    worker, engine_down = None, True
    try:
        worker = start_worker(tmp_path, queue, env=env, queues=queue, concurrency=2)
        params = {"script": "echo ok > /outputs/out.txt; sleep 1", "outputs": ["out.txt"], "timeout_seconds": 30}
        handles = [run_tool.apply_async(("script", tenant, f"r{i}", params), queue=queue) for i in range(4)]
        wait_until(lambda: "Retry in" in worker.log_text(), 30, "a run to be retried while the engine is away")
        outer.start()
        engine_down = False
        wait_for_daemon(dind)
        results = [handle.get(timeout=WAIT) for handle in handles]
    finally:
        if engine_down:
            outer.start()
            wait_for_daemon(dind)
        if worker is not None:
            worker.stop()
        with redis.Redis.from_url(redis_url) as conn:
            unset_limit(conn, tenant)
    assert [r["status"] for r in results] == ["ok"] * 4
    log = worker.log_text() if worker else ""
    assert "DockerUnavailableError" in log and "raised unexpected" not in log
    assert "RedeliveryLimitError" not in log
