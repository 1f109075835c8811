"""A deploy with a 30 s grace (Kubernetes' default): the run stops cleanly, goes back, completes elsewhere once."""

from __future__ import annotations

import secrets
import signal
import time
from pathlib import Path
from typing import Any

import docker
import pytest
import redis

from bench.launch import start_worker, wait_until
from tasks import app
from tasks.worker import keys
from tasks.worker.delivery import Delivery

pytestmark = pytest.mark.integration
GRACE = 30


def running_tool(client: docker.DockerClient, task_id: str) -> list[dict[str, Any]]:
    return client.api.containers(filters={"label": [f"studio.task={task_id}", "studio.role=tool"]})


@pytest.mark.timeout(240)
def test_a_sigterm_puts_a_45s_run_back_and_a_second_worker_completes_it_once_uncounted(
    redis_url: str, docker_client: docker.DockerClient, busybox_image: str, tmp_path: Path
) -> None:
    queue = f"deploy-{secrets.token_hex(4)}"
    first = start_worker(tmp_path, f"old-{queue}", concurrency=1, queues=queue)
    params = {"script": "sleep 45; echo done > /outputs/out.txt", "timeout_seconds": 120}
    handle = app.send_task("toolrunner.run_tool", ("script", "acme", "deploy-1", params), queue=queue)
    second = start_worker(tmp_path, f"new-{queue}", concurrency=1, queues=queue)
    try:
        wait_until(lambda: running_tool(docker_client, handle.id), 60, "the tool to start")
        time.sleep(3)
        first.stop(signal.SIGTERM, timeout=GRACE)  # SIGKILL at the end of the grace, as docker stop does
        assert first.process.returncode == 0, "the worker needed more than the grace period"
        result = handle.get(timeout=90)
    finally:
        first.stop(signal.SIGKILL)
        second.stop()
    assert result["status"] == "ok" and result["findings"] == [{"file": "out.txt", "line": "done"}]
    assert "run put back on the queue (worker shutting down)" in first.log_text()
    assert f"run_tool[{handle.id}] succeeded" in second.log_text()
    assert (first.log_text() + second.log_text()).count(f"run_tool[{handle.id}] succeeded") == 1
    with redis.Redis.from_url(redis_url) as conn:  # the put-back did not count as a worker that died
        key = Delivery(handle.id, "script", "acme", "deploy-1").key
        assert int(conn.get(keys.DELIVERIES(key)) or 0) == 1
