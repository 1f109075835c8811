"""Flower with the project's configuration: auth required, a running tool's progress readable via its API, cancelled
runs REVOKED, and no run's params or input files in what it shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
from celery.result import AsyncResult

from bench.launch import ROOT, Worker, free_port, start_worker, wait_until
from tasks import app, cancel_run, run_tool
from tasks.worker.limits import set_limit, unset_limit
from tests.integration.helpers import tool_containers

pytestmark = pytest.mark.integration
AUTH = ("flower-admin", "test-password-1")


@pytest.fixture(scope="module")
def flower(worker: Worker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Flower on 127.0.0.1 with basic auth, started the documented way."""
    port = free_port()
    env = {
        **os.environ,
        "TOOLRUNNER_FLOWER_USER": AUTH[0],
        "TOOLRUNNER_FLOWER_PASSWORD": AUTH[1],
        "TOOLRUNNER_FLOWER_PORT": str(port),
    }
    log = tmp_path_factory.mktemp("flower") / "flower.log"
    command = [sys.executable, "-m", "celery", "-A", "tasks", "flower", "--conf=config/flower.py"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: requests.get(f"{url}/healthcheck", timeout=1).ok, 30, log)
        _wait_for(lambda: _workers_seen(url), 30, log)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def _workers_seen(url: str) -> bool:
    return bool(requests.get(f"{url}/api/workers", auth=AUTH, params={"refresh": "1"}, timeout=5).json())


def _wait_for(check: Any, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"Flower did not become ready:\n{log.read_text(errors='replace')[-3000:]}")


def test_flower_refuses_api_calls_without_credentials(flower: str) -> None:
    assert requests.get(f"{flower}/api/workers", timeout=5).status_code == 401
    assert requests.get(f"{flower}/api/tasks", auth=("flower-admin", "wrong"), timeout=5).status_code == 401


def _watched(flower: str, handle: AsyncResult, timeout: float) -> list[dict[str, Any]]:
    """What Flower's task info said of a task, every 0.1 s until it is ready."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not handle.ready() and time.monotonic() < deadline:
        info = requests.get(f"{flower}/api/task/info/{handle.id}", auth=AUTH, timeout=5)
        if info.ok:
            seen.append(info.json())
        time.sleep(0.1)
    return seen


def test_flower_shows_a_running_tools_state_and_progress(flower: str) -> None:
    params = {"script": "for i in 1 2 3 4 5 6 7 8; do echo l$i; sleep 0.5; done; echo ok > /outputs/out.txt"}
    handle = run_tool.delay("script", "acme", "flower-1", params)
    seen = _watched(flower, handle, 60)
    assert handle.get(timeout=60)["status"] == "ok"
    progress = [s["result"] for s in seen if s["state"] == "PROGRESS"]
    running = [p for p in progress if isinstance(p, dict) and p.get("stage") == "running"]
    assert running, f"no running progress seen in Flower: {progress}"
    assert all(p["tool"] == "script" and p["tenant_id"] == "acme" and p["run_id"] == "flower-1" for p in running)
    assert max(p["elapsed_seconds"] for p in running) > 0
    final = requests.get(f"{flower}/api/task/info/{handle.id}", auth=AUTH, timeout=5).json()
    assert final["name"] == "toolrunner.run_tool"


def test_flower_shows_a_chunked_runs_chunks_done_of_total_then_its_one_result(
    flower: str, scoped: Callable[..., None], tmp_path: Path
) -> None:
    scoped("acme")
    targets = [f"127.0.9.{i}" for i in range(1, 9)]
    scanner = start_worker(tmp_path, "flower-nmap", env={"TOOLRUNNER_TOOL_NETWORK": "host"}, queues="flower-nmap")
    set_limit(app.redis, "acme", 1)  # one chunk at a time: each end is seen on its own
    try:
        request = {"targets": targets, "ports": "9", "chunk_size": 2}
        handle = run_tool.apply_async(("nmap", "acme", "flower-chunked", request), queue="flower-nmap")
        seen = _watched(flower, handle, 120)
        result = handle.get(timeout=60)
    finally:
        unset_limit(app.redis, "acme")
        scanner.stop()
    assert result["status"] == "ok" and result["chunks"]["total"] == 4
    chunked = [s["result"] for s in seen if s["state"] == "PROGRESS" and isinstance(s["result"], dict)]
    assert chunked and all(p["stage"] == "chunks" and p["chunks_total"] == 4 for p in chunked), seen
    assert {p["chunks_done"] for p in chunked} & {1, 2, 3}, f"chunks done as they end: {chunked}"
    final = wait_until(lambda: _flower_task(flower, handle.id), 10, "Flower's view of the parent")
    wait_until(lambda: _flower_task(flower, handle.id)["state"] == "SUCCESS", 10, "the parent SUCCESS in Flower")
    assert final["name"] == "toolrunner.run_tool"


SECRET = "flower-must-not-see-this"
LONG = {"script": f": {SECRET}; echo started > /outputs/out.txt; sleep 60", "timeout_seconds": 120}


def _flower_task(flower: str, task_id: str) -> dict[str, Any]:
    info: dict[str, Any] = requests.get(f"{flower}/api/task/info/{task_id}", auth=AUTH, timeout=5).json()
    return info


def _waiting_for_slot(task_id: str) -> bool:
    result = run_tool.AsyncResult(task_id)
    return result.state == "PROGRESS" and result.info.get("stage") == "waiting_for_slot"


def test_flower_shows_cancelled_runs_revoked_and_no_params_or_input_files(
    flower: str, worker: Worker, docker_client: docker.DockerClient
) -> None:
    tenant, files = "flower-cancel", {"targets.txt": SECRET}
    set_limit(app.redis, tenant, 1)  # the second run parks: a run no worker holds when it is cancelled
    try:
        running = run_tool.delay("script", tenant, "running", LONG, files)
        wait_until(lambda: tool_containers(docker_client, tenant), 60, "the first run's tool to start")
        parked = run_tool.delay("script", tenant, "parked", LONG, files)
        wait_until(lambda: _waiting_for_slot(parked.id), 60, "the second run to park")
        wait_until(lambda: _flower_task(flower, running.id).get("state") == "PROGRESS", 30, "Flower to see PROGRESS")
        cancel_run(parked.id, tenant_id=tenant)
        cancel_run(running.id, tenant_id=tenant)
        for run in (parked, running):
            wait_until(lambda r=run: _flower_task(flower, r.id).get("state") == "REVOKED", 30, "Flower's REVOKED")
        wait_until(lambda: not tool_containers(docker_client, tenant), 30, "the cancelled tool to be removed")
        time.sleep(2)  # a late event would have reached Flower by now
    finally:
        unset_limit(app.redis, tenant)
    listed = requests.get(f"{flower}/api/tasks", auth=AUTH, timeout=5).json()
    for run, run_id in ((running, "running"), (parked, "parked")):
        task = listed[run.id]
        assert (task["state"], run.state) == ("REVOKED", "REVOKED")
        assert task["args"] == f"{{'tool': 'script', 'tenant_id': '{tenant}', 'run_id': '{run_id}'}}"
        assert task["kwargs"] == "{'files': '<redacted>', 'params': '<redacted>'}"
        assert task["result"].startswith("cancelled: ")
    assert SECRET not in json.dumps(listed), "params or input files reached Flower"
