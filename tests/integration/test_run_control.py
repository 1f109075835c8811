"""Cancelling runs on a real worker, Redis and engine: every way in ends REVOKED, with nothing left behind."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker
import pytest
import redis
from celery.exceptions import TaskRevokedError
from celery.result import AsyncResult
from typer.testing import CliRunner

from bench.launch import Worker, start_worker, wait_until
from tasks import app, cancel_run
from tasks.cli import cli
from tasks.errors import RunCancelledError
from tasks.service import RunContext, RunRequest, Stage, execute, plan_run
from tasks.worker.cancel import Cancelled
from tasks.worker.control import RunControl

pytestmark = pytest.mark.integration
LONG = {"script": "echo started > /outputs/out.txt; sleep 60", "timeout_seconds": 120}


def tool_containers(client: docker.DockerClient, task_id: str) -> list[dict[str, Any]]:
    return client.api.containers(all=True, filters={"label": [f"studio.task={task_id}", "studio.role=tool"]})


def run_volumes(client: docker.DockerClient, task_id: str) -> list[dict[str, Any]]:
    return client.api.volumes(filters={"label": [f"studio.task={task_id}"]}).get("Volumes") or []


def start_long_run(client: docker.DockerClient, run_id: str) -> AsyncResult:
    handle = app.send_task("toolrunner.run_tool", ("script", "acme", run_id, LONG))
    wait_until(lambda: tool_containers(client, handle.id), 60, "the tool container to start")
    return handle


def assert_ends_revoked_and_stays(client: docker.DockerClient, handle: AsyncResult) -> None:
    # The requirement: the tool container is gone within 5 s of the cancel (the watcher polls each second).
    wait_until(lambda: not tool_containers(client, handle.id), 5, "the tool container to be killed")
    with pytest.raises(TaskRevokedError):
        handle.get(timeout=10)
    wait_until(lambda: not run_volumes(client, handle.id), 10, "both volumes to be removed")
    time.sleep(2)  # any late progress report would land by now
    assert AsyncResult(handle.id, app=app).state == "REVOKED"


def test_cancel_run_kills_the_tool_removes_the_volumes_and_the_run_ends_revoked(
    worker: Worker, docker_client: docker.DockerClient
) -> None:
    handle = start_long_run(docker_client, "cancel-mid-run")
    assert cancel_run(handle.id, tenant_id="acme").outcome is Cancelled.SENT
    assert_ends_revoked_and_stays(docker_client, handle)
    assert f"run cancelled task={handle.id}" in worker.log_text()


def test_celerys_own_revoke_with_terminate_ends_the_same_way(
    worker: Worker, docker_client: docker.DockerClient
) -> None:
    handle = start_long_run(docker_client, "revoke-terminate")
    handle.revoke(terminate=True)
    assert_ends_revoked_and_stays(docker_client, handle)


def test_cancelling_twice_or_a_finished_run_is_harmless_and_says_so(
    worker: Worker, docker_client: docker.DockerClient
) -> None:
    handle = start_long_run(docker_client, "cancel-twice")
    first, second = cancel_run(handle.id, tenant_id="acme"), cancel_run(handle.id, tenant_id="acme")
    assert (first.outcome, second.outcome) == (Cancelled.SENT, Cancelled.ALREADY)
    assert second.message == f"{handle.id}: already cancelled"
    assert_ends_revoked_and_stays(docker_client, handle)
    done = app.send_task("toolrunner.run_tool", ("script", "acme", "cancel-done", {"script": "true"}))
    assert done.get(timeout=60)["status"] == "ok"
    finished = cancel_run(done.id, tenant_id="acme")
    assert finished.outcome is Cancelled.FINISHED and "already finished (SUCCESS)" in finished.message
    assert AsyncResult(done.id, app=app).state == "SUCCESS"


def test_a_run_cancelled_while_queued_never_creates_a_volume_even_on_a_worker_started_after_the_cancel(
    redis_url: str, docker_client: docker.DockerClient, busybox_image: str, tmp_path: Path
) -> None:
    queue = f"parked-{secrets.token_hex(4)}"
    handle = app.send_task("toolrunner.run_tool", ("script", "acme", "cancel-queued", LONG), queue=queue)
    assert cancel_run(handle.id, tenant_id="acme").outcome is Cancelled.RECORDED
    events = docker_client.events(decode=True, filters={"label": [f"studio.task={handle.id}"]})
    late = start_worker(tmp_path, f"late-{queue}", concurrency=1, queues=queue)  # its revoked set is empty
    try:
        with pytest.raises(TaskRevokedError):
            handle.get(timeout=60)
    finally:
        late.stop()
        events.close()
    assert list(events) == []  # not one volume or container was created for it
    assert "cancelled before it started" in str(AsyncResult(handle.id, app=app).result)


def test_an_unknown_id_is_recorded_and_the_cli_says_so_in_one_line(
    redis_url: str, worker: Worker, docker_client: docker.DockerClient
) -> None:
    task_id = str(uuid.uuid4())
    result = CliRunner().invoke(cli, ["cancel", task_id, "--tenant", "acme"])
    assert result.exit_code == 3, result.output  # pinned: an id never seen
    unseen = f"{task_id}: no run of tenant acme with this id was seen; "
    later = "a run it sends with this id will not start"
    assert result.output == f"{unseen}cancel recorded for acme: {later}\n"
    again = CliRunner().invoke(cli, ["cancel", task_id, "--tenant", "acme"])
    assert (again.exit_code, again.output) == (3, f"{unseen}a cancel was already recorded for acme: {later}\n")
    # The id, sent later, never runs.
    handle = app.send_task("toolrunner.run_tool", ("script", "acme", "cancel-unknown", LONG), task_id=task_id)
    with pytest.raises(TaskRevokedError):
        handle.get(timeout=30)
    with redis.Redis.from_url(redis_url) as conn:
        assert conn.ttl(f"toolrunner:cancel:{task_id}:acme") > 0


class CancelWhenReading:
    """A reporter that cancels the run (as the watcher does) when the outputs start being read."""

    def __init__(self, control: RunControl) -> None:
        self.control = control

    def __call__(self, stage: Stage, meta: Mapping[str, Any]) -> None:
        if stage is Stage.READING_OUTPUTS:
            self.control.stop = RunCancelledError


def test_a_cancel_while_the_outputs_are_read_removes_both_volumes_and_reports_nothing_after_it(
    redis_url: str, docker_client: docker.DockerClient, busybox_image: str
) -> None:
    control = RunControl(redis.Redis.from_url(redis_url), app.settings, "cancel-reading", "local", "acme")
    reported: list[Stage] = []
    cancel_when_reading = CancelWhenReading(control)

    def report(stage: Stage, meta: Mapping[str, Any]) -> None:
        reported.append(stage)
        cancel_when_reading(stage, meta)

    request = RunRequest("script", "acme", "cancel-reading", {"script": "seq 1 100000 > /outputs/out.txt"})
    plan = plan_run(app.catalogue, request, max_input_bytes=1 << 20, max_timeout_seconds=60)
    with pytest.raises(RunCancelledError):
        execute(plan, RunContext(docker_client, app.settings, "cancel-reading", control.guard(report)))
    assert reported[-1] is Stage.READING_OUTPUTS  # the cleanup's own report was refused, and cleanup ran anyway
    assert not run_volumes(docker_client, "cancel-reading")
