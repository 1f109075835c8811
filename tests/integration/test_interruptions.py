"""Celery's soft time limit firing in each lifecycle stage (injected in-process): cleanup always happens."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import docker
import pytest
from celery.exceptions import SoftTimeLimitExceeded

from isolation import IsolatedContainerVolume
from tasks import app
from tasks.service import RunContext, RunRequest, execute, plan_run
from tests.integration.helpers import InterruptedStream

pytestmark = pytest.mark.integration
INTERRUPTIONS = (SoftTimeLimitExceeded,)


class InterruptAt:
    """A progress reporter that raises SoftTimeLimitExceeded when a given stage is reported."""

    def __init__(self, stage: str, after: int = 1) -> None:
        self.stage, self.after, self.seen = stage, after, 0

    def __call__(self, stage: str, meta: Mapping[str, Any]) -> None:
        if stage == self.stage:
            self.seen += 1
            if self.seen >= self.after:
                raise SoftTimeLimitExceeded()


def plan(script: str) -> Any:
    return plan_run(
        app.catalogue,
        RunRequest("script", "acme", "interrupted", {"script": script, "timeout_seconds": 30}, {"in.txt": "x" * 1000}),
        max_input_bytes=1 << 20, max_timeout_seconds=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    "stage",
    [
        "preparing_inputs",  # before the volumes exist
        "reading_outputs",  # after the tool, with both volumes full
        "cleaning_up",  # when cleanup itself starts
    ],
)
def test_the_soft_time_limit_in_any_stage_leaves_no_volume_or_container(
    docker_client: docker.DockerClient, busybox_image: str, stage: str
) -> None:
    ctx = RunContext(docker_client, app.settings, f"interrupt-{stage}", InterruptAt(stage), interruptions=INTERRUPTIONS)
    with pytest.raises(SoftTimeLimitExceeded):
        execute(plan("echo out > /outputs/out.txt"), ctx)


def test_the_soft_time_limit_while_the_tool_runs_kills_it_and_returns_what_it_wrote(
    docker_client: docker.DockerClient, busybox_image: str
) -> None:
    ctx = RunContext(
        docker_client, app.settings, "interrupt-running", InterruptAt("running", after=3), interruptions=INTERRUPTIONS
    )
    result = execute(plan("echo out > /outputs/out.txt; sleep 30"), ctx).as_dict()
    assert result["status"] == "timed_out"
    assert result["findings"] == [{"file": "out.txt", "line": "out"}]


def test_the_soft_time_limit_in_the_middle_of_an_upload_removes_the_half_filled_volume(
    docker_client: docker.DockerClient,
) -> None:
    volume = IsolatedContainerVolume("acme", "upload", docker_client)
    with pytest.raises(SoftTimeLimitExceeded):
        volume.initialize({"big.bin": io.BufferedReader(InterruptedStream())})
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(volume.name)
