"""Task logic in eager mode with a mocked engine: bad input makes no Docker call; an absent engine is retried."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import docker
import pytest
import requests
from celery import Celery, Task

from config import load_settings
from isolation import DockerUnavailableError
from tasks import TaskInputError
from tasks.service import RunRequest
from tasks.tools import load_catalogue
from tasks.worker.run import run_request

SETTINGS = load_settings()


@pytest.fixture
def eager() -> Iterator[tuple[Task, mock.MagicMock]]:
    """An eager task on an app of its own that runs run_request with a mock Docker client passed in."""
    client = mock.create_autospec(docker.DockerClient, instance=True)
    client.api = mock.MagicMock()
    catalogue = load_catalogue(["tests.tooldefs.script"])
    probe = Celery("eager-probe", set_as_current=False)
    probe.conf.update(task_always_eager=True)

    @probe.task(bind=True)  # type: ignore[misc]
    def run(self: Task, *args: Any) -> dict[str, Any]:
        return run_request(self, RunRequest(*args), client, mock.MagicMock(), SETTINGS, catalogue)

    yield run, client
    probe.close()


@pytest.mark.parametrize(
    "args",
    [
        ("nope", "acme", "r", {}),
        ("script", "bad tenant", "r", {"script": "true"}),
        ("script", "acme", "r", {"script": "true", "unknown": 1}),
        ("script", "acme", "r", {"script": "true"}, {"/abs": "x"}),
    ],
)
def test_bad_input_fails_without_any_docker_call(eager: tuple[Task, mock.MagicMock], args: tuple[object, ...]) -> None:
    task, client = eager
    with pytest.raises(TaskInputError):
        task.apply(args).get()
    assert client.mock_calls == []


def test_an_unreachable_engine_is_retried_a_bounded_number_of_times(eager: tuple[Task, mock.MagicMock]) -> None:
    task, client = eager
    client.volumes.create.side_effect = requests.exceptions.ConnectionError("connection refused")
    with pytest.raises(DockerUnavailableError, match="did not answer"):
        task.apply(("script", "acme", "r", {"script": "true"})).get()
    assert client.volumes.create.call_count == SETTINGS.docker_retries + 1
