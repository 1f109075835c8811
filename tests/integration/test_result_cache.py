"""The result cache on a real worker: a hit starts no container (the engine says so); any difference misses."""

from __future__ import annotations

import time
from typing import Any

import docker
import pytest

from bench.launch import Worker
from tasks import cancel_run, run_tool

pytestmark = pytest.mark.integration


def params(script: str, **extra: Any) -> dict[str, Any]:
    return {"script": script, "cache_max_age_seconds": 600, **extra}


def tool_creations(client: docker.DockerClient, since: float, tenant: str, run: str | None = None) -> int:
    """Tool containers of this tenant (and run) the engine created since then, from its event stream."""
    labels = [f"studio.tenant={tenant}", "studio.role=tool"] + ([f"studio.run={run}"] if run else [])
    events = client.events(
        since=int(since), until=int(time.time()) + 1, decode=True,
        filters={"type": "container", "event": "create", "label": labels},
    )  # fmt: skip
    return sum(1 for _ in events)


def test_a_second_identical_run_is_a_hit_that_starts_no_container(
    worker: Worker, docker_client: docker.DockerClient
) -> None:
    started = time.time()
    first = run_tool.delay("script", "cache-a", "r1", params("echo $RANDOM > /outputs/out.txt")).get(timeout=120)
    second = run_tool.delay("script", "cache-a", "r2", params("echo $RANDOM > /outputs/out.txt")).get(timeout=120)
    assert first["cache"] == {"hit": False}
    assert second["cache"]["hit"] is True and second["cache"]["source_task_id"] == first["task_id"]
    assert second["findings"] == first["findings"] and second["run_id"] == "r2"
    assert tool_creations(docker_client, started, "cache-a", run="r1") == 1, "the engine's events show real runs"
    assert tool_creations(docker_client, started, "cache-a", run="r2") == 0


def test_another_tenant_or_a_changed_input_byte_misses(worker: Worker) -> None:
    script = "cat /inputs/in.txt > /outputs/out.txt"
    run_tool.delay("script", "cache-b", "r1", params(script), {"in.txt": "a"}).get(timeout=120)
    other = run_tool.delay("script", "cache-c", "r1", params(script), {"in.txt": "a"}).get(timeout=120)
    changed = run_tool.delay("script", "cache-b", "r2", params(script), {"in.txt": "b"}).get(timeout=120)
    assert other["cache"] == {"hit": False} and changed["cache"] == {"hit": False}


def test_a_failed_run_is_not_cached(worker: Worker) -> None:
    first = run_tool.delay("script", "cache-d", "r1", params("exit 3")).get(timeout=120)
    second = run_tool.delay("script", "cache-d", "r2", params("exit 3")).get(timeout=120)
    assert first["status"] == second["status"] == "tool_failed"
    assert second["cache"] == {"hit": False}


def test_ten_identical_runs_at_once_start_one_container(worker: Worker, docker_client: docker.DockerClient) -> None:
    since = time.time()
    handles = [
        run_tool.delay("script", "cache-e", f"r{i}", params("sleep 2; echo x > /outputs/out.txt")) for i in range(10)
    ]
    results = [h.get(timeout=180) for h in handles]
    assert all(r["status"] == "ok" for r in results)
    assert sum(r["cache"]["hit"] for r in results) == 9
    assert tool_creations(docker_client, since, "cache-e") == 1


def test_a_retagged_image_misses(worker: Worker, docker_client: docker.DockerClient, busybox_image: str) -> None:
    script = "echo same > /outputs/out.txt"
    original = docker_client.images.get(busybox_image).id
    run_tool.delay("script", "cache-f", "r1", params(script)).get(timeout=120)
    changed = docker_client.containers.create(busybox_image, ["true"], labels={"toolrunner.test": "retag"})
    try:
        committed = docker_client.api.commit(changed.id, repository=busybox_image.split(":")[0], tag="cachetest")
        docker_client.api.tag(committed["Id"], busybox_image.split(":")[0], busybox_image.split(":")[1])
        result = run_tool.delay("script", "cache-f", "r2", params(script)).get(timeout=120)
    finally:
        changed.remove(force=True)
        docker_client.api.tag(original, busybox_image.split(":")[0], busybox_image.split(":")[1])
        docker_client.api.remove_image(busybox_image.split(":")[0] + ":cachetest", force=True)
    assert result["cache"] == {"hit": False}


def test_when_the_leader_is_cancelled_a_waiting_identical_run_takes_over(
    worker: Worker, docker_client: docker.DockerClient
) -> None:
    since = time.time()
    same = params("sleep 4; echo done > /outputs/out.txt")
    leader = run_tool.delay("script", "cache-leader", "r1", same)
    while not (isinstance(leader.info, dict) and leader.info.get("stage") == "running"):
        time.sleep(0.1)
    waiter = run_tool.delay("script", "cache-leader", "r2", same)
    while not (isinstance(waiter.info, dict) and waiter.info.get("stage") == "waiting_for_identical_run"):
        time.sleep(0.1)
    cancel_run(leader.id, tenant_id="cache-leader")
    result = waiter.get(timeout=120)
    assert result["status"] == "ok" and result["cache"] == {"hit": False}
    assert run_tool.AsyncResult(leader.id).state == "REVOKED"
    assert tool_creations(docker_client, since, "cache-leader", run="r2") == 1, "the waiter ran the tool itself"
