"""A finished run's result outlives the result backend: `result.json` in the artifact store, for its tenant only."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from bench.launch import Worker, start_worker
from tasks import result_for, run_tool
from tasks.cli import cli
from tasks.errors import TaskIdentityError

pytestmark = pytest.mark.integration
WAIT = 120
QUEUE = "forgetful"


@pytest.fixture
def forgetful_worker(redis_url: str, busybox_image: str, tmp_path: Path) -> Iterator[Worker]:
    """A worker whose results leave the backend after 2 s, on a queue of its own (another worker of the session would
    keep its results for a day)."""
    with redis.Redis.from_url(redis_url) as conn:
        conn.flushdb()
    env = {"TOOLRUNNER_RESULT_EXPIRES_SECONDS": "2"}
    running = start_worker(tmp_path, "forgetful", concurrency=1, env=env, queues=QUEUE)
    yield running
    running.stop()


def _expired(task_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while run_tool.AsyncResult(task_id).state != "PENDING":
        assert time.monotonic() < deadline, f"task {task_id}'s result never left the backend"
        time.sleep(0.5)


def test_a_result_is_read_back_from_the_artifact_store_after_the_backend_let_it_go(forgetful_worker: Worker) -> None:
    params = {"script": "echo kept > /outputs/out.txt", "outputs": ["out.txt"]}
    handle = run_tool.apply_async(("script", "acme", "kept-1", params), queue=QUEUE)
    result = handle.get(timeout=WAIT)
    assert result["status"] == "ok"
    _expired(handle.id)
    assert result_for(handle.id, "script", "acme", "kept-1", timeout=5) == result
    shown = CliRunner().invoke(cli, ["result", handle.id, "--tenant", "acme"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) == result


def test_another_tenant_is_refused_a_kept_result(forgetful_worker: Worker) -> None:
    handle = run_tool.apply_async(("script", "acme", "kept-2", {"script": "true"}), queue=QUEUE)
    assert handle.get(timeout=WAIT)["status"] == "ok"
    _expired(handle.id)
    with pytest.raises(TaskIdentityError):
        result_for(handle.id, "script", "rival", "kept-2", timeout=5)
    refused = CliRunner().invoke(cli, ["result", handle.id, "--tenant", "rival"])
    assert refused.exit_code != 0 and "kept" not in refused.stdout
