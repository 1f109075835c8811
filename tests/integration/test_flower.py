"""Flower with the project's configuration: auth required, and a running tool's progress readable via its API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.launch import ROOT, Worker, free_port
from tasks import run_tool

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


def test_flower_shows_a_running_tools_state_and_progress(flower: str) -> None:
    params = {"script": "for i in 1 2 3 4 5 6 7 8; do echo l$i; sleep 0.5; done; echo ok > /outputs/out.txt"}
    handle = run_tool.delay("script", "acme", "flower-1", params)
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while not handle.ready() and time.monotonic() < deadline:
        info = requests.get(f"{flower}/api/task/info/{handle.id}", auth=AUTH, timeout=5)
        if info.ok:
            seen.append(info.json())
        time.sleep(0.2)
    assert handle.get(timeout=60)["status"] == "ok"
    progress = [s["result"] for s in seen if s["state"] == "PROGRESS"]
    running = [p for p in progress if isinstance(p, dict) and p.get("stage") == "running"]
    assert running, f"no running progress seen in Flower: {progress}"
    assert all(p["tool"] == "script" and p["tenant_id"] == "acme" and p["run_id"] == "flower-1" for p in running)
    assert max(p["elapsed_seconds"] for p in running) > 0
    final = requests.get(f"{flower}/api/task/info/{handle.id}", auth=AUTH, timeout=5).json()
    assert final["name"] == "toolrunner.run_tool"
