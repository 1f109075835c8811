"""Workers SIGKILLed with their process group, with the DEFAULT timing settings (visibility 60 s, heartbeat 10 s,
reaper 60 s): a dead worker's run resumes elsewhere within 2 minutes, a live run longer than the visibility
timeout is never delivered twice, and a scanner with no successor is killed by the deadline reaper.

One scenario, module-scoped, so the waits of the three checks overlap.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
import pytest
import redis
from celery.result import AsyncResult

import isolation
from bench.launch import Worker, start_worker, wait_until
from tasks import app
from tasks.worker import keys
from tasks.worker.delivery import Delivery
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.integration
VISIBILITY = app.settings.visibility_timeout  # the default: the suite's environment does not set it
HEALTHY_SECONDS = VISIBILITY + 15


def tool_containers(client: docker.DockerClient, task_id: str) -> list[dict[str, Any]]:
    return client.api.containers(all=True, filters={"label": [f"studio.task={task_id}", "studio.role=tool"]})


@dataclass
class Crash:
    """The scenario: who ran what, and when the workers were killed."""

    killed_at: float
    crashed: AsyncResult
    healthy: AsyncResult
    orphan: AsyncResult
    orphan_deadline: float
    survivor: Worker
    logs: list[Worker]
    orphan_queue: str


def send(run_id: str, script: str, queue: str, timeout: int = 120) -> AsyncResult:
    params = {"script": script, "timeout_seconds": timeout}
    return app.send_task("toolrunner.run_tool", ("script", "acme", run_id, params), queue=queue)


@pytest.fixture(scope="module")
def crash(
    redis_url: str, docker_client: docker.DockerClient, busybox_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Crash]:
    tag, logs = secrets.token_hex(4), tmp_path_factory.mktemp("crash")
    shared, lone = f"crash-{tag}", f"lone-{tag}"
    doomed = start_worker(logs, f"doomed-{tag}", concurrency=1, queues=shared)
    # No successor of its name and nobody else on its queue; short margins so its volumes' deadline comes soon.
    loner = start_worker(logs, f"loner-{tag}", concurrency=1, queues=lone,
                         env={"TOOLRUNNER_TIME_LIMIT_MARGIN_SECONDS": "5"})  # fmt: skip
    crashed = send("crash-1", "echo started > /outputs/out.txt; sleep 15; echo done >> /outputs/out.txt", shared)
    orphan = send("orphan-1", "sleep 600", lone, timeout=10)
    wait_until(lambda: tool_containers(docker_client, crashed.id), 60, "the doomed worker's tool to start")
    started = wait_until(lambda: tool_containers(docker_client, orphan.id), 60, "the lone worker's tool to start")
    deadline = isolation.parse_deadline(started[0]["Labels"]["studio.deadline"])
    assert deadline is not None
    survivor = start_worker(logs, f"survivor-{tag}", concurrency=2, queues=shared)
    healthy = send("healthy-1", f"sleep {HEALTHY_SECONDS}; echo done > /outputs/out.txt", shared, HEALTHY_SECONDS + 60)
    wait_until(lambda: tool_containers(docker_client, healthy.id), 60, "the healthy run to start")
    doomed.kill_group()
    loner.kill_group()
    killed_at = time.monotonic()
    yield Crash(killed_at, crashed, healthy, orphan, deadline.timestamp(), survivor, [doomed, loner, survivor], lone)
    survivor.stop()
    with redis.Redis.from_url(REDIS_URL) as conn:  # the orphan's message stays parked on a queue nobody reads
        conn.delete(lone)
    app.control.revoke(orphan.id)
    isolation.remove_labelled({"task": orphan.id}, docker_client, label_prefix="studio")


@pytest.mark.timeout(400)
def test_a_sigkilled_workers_run_completes_on_another_worker_within_two_minutes(crash: Crash) -> None:
    result = crash.crashed.get(timeout=max(1.0, 120 - (time.monotonic() - crash.killed_at)))
    assert result["status"] == "ok"
    assert [f["line"] for f in result["findings"]] == ["started", "done"]
    # The result is stored before the pool process logs the success line: wait a moment for the line.
    succeeded = f"run_tool[{crash.crashed.id}] succeeded"
    wait_until(lambda: succeeded in crash.survivor.log_text(), 10, "the survivor's success line")


@pytest.mark.timeout(400)
def test_a_live_run_longer_than_the_visibility_timeout_is_delivered_once(crash: Crash, redis_url: str) -> None:
    result = crash.healthy.get(timeout=HEALTHY_SECONDS + 120)
    assert result["status"] == "ok"
    assert crash.survivor.log_text().count(f"run_tool[{crash.healthy.id}] received") == 1
    with redis.Redis.from_url(redis_url) as conn:
        key = Delivery(crash.healthy.id, "script", "acme", "healthy-1").key
        assert int(conn.get(keys.DELIVERIES(key)) or 0) == 1


@pytest.mark.timeout(400)
def test_an_orphaned_scanner_is_killed_within_90s_of_its_deadline_by_another_workers_reaper(
    crash: Crash, docker_client: docker.DockerClient
) -> None:
    bound = crash.orphan_deadline + 90 - time.time()
    # Nobody consumes the orphan's queue, so no redelivery cleans it up: a reaper does (the survivor's, or
    # that of any other worker on this daemon, e.g. the suite's shared one).
    wait_until(lambda: not tool_containers(docker_client, crash.orphan.id), max(bound, 1), "the reaper")
