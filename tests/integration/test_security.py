"""Security defaults on a real worker: a pickle message is refused and never runs."""

from __future__ import annotations

import time
import uuid

import docker
import pytest

from bench.launch import Worker
from tasks import app

pytestmark = pytest.mark.integration


def test_a_pickle_message_is_refused_by_the_worker_and_never_runs(
    worker: Worker, docker_client: docker.DockerClient
) -> None:
    task_id = str(uuid.uuid4())
    params = {"script": "echo pwned > /outputs/out.txt"}
    app.send_task("toolrunner.run_tool", ("script", "acme", "pickled", params), task_id=task_id, serializer="pickle")
    deadline = time.monotonic() + 30
    while "untrusted content of type pickle" not in worker.log_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "untrusted content of type pickle" in worker.log_text()
    time.sleep(1)
    assert f"run_tool[{task_id}] received" not in worker.log_text()
    assert app.AsyncResult(task_id).state == "PENDING"
    assert docker_client.api.containers(all=True, filters={"label": ["studio.run=pickled"]}) == []
