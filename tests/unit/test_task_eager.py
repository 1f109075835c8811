"""The run pipeline in eager mode with a mocked engine: bad input makes no Docker call; an absent engine is
retried; the steps that need a broker are skipped; a new step is one line in the sequence."""

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
from tasks.scope.policy import checker
from tasks.scope.store import Scopes
from tasks.service import RunRequest, RunResult
from tasks.tools import load_catalogue
from tasks.worker import pipeline
from tasks.worker.context import Run, Services
from tasks.worker.steps import Proceed, Step

SETTINGS = load_settings()


seen_tools: list[str] = []


def _seen(run: Run, proceed: Proceed) -> RunResult:
    seen_tools.append(run.plan.spec.name)
    return proceed(run)


NOTING = Step("noting", _seen, needs_broker=False)  # a new step: this line and one in the sequence


@pytest.fixture
def eager() -> Iterator[tuple[Task, mock.MagicMock]]:
    """An eager task on an app of its own that runs the pipeline (with one added step) on a mock Docker client."""
    client = mock.create_autospec(docker.DockerClient, instance=True)
    client.api = mock.MagicMock()
    redis_client = mock.MagicMock()
    catalogue = load_catalogue(["tests.tooldefs.script"])
    services = Services(lambda: client, redis_client, SETTINGS, catalogue, Scopes(redis_client), checker(SETTINGS))
    after_plan = [step.name for step in pipeline.STEPS].index("plan") + 1
    steps = (*pipeline.STEPS[:after_plan], NOTING, *pipeline.STEPS[after_plan:])
    probe = Celery("eager-probe", set_as_current=False)
    probe.conf.update(task_always_eager=True)

    @probe.task(bind=True)  # type: ignore[misc]
    def run(self: Task, *args: Any) -> dict[str, Any]:
        return pipeline.run_pipeline(Run(self, RunRequest(*args), services), steps).as_dict()

    seen_tools.clear()
    yield run, client
    assert redis_client.mock_calls == [], "eager mode skips every step that needs Redis or a broker"
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
    client.api.create_container.side_effect = requests.exceptions.ConnectionError("connection refused")
    with pytest.raises(DockerUnavailableError, match="did not answer"):
        task.apply(("script", "acme", "r", {"script": "true"})).get()
    assert client.api.create_container.call_count == SETTINGS.docker_retries + 1


def test_a_step_added_to_the_sequence_sees_every_try_of_the_run(eager: tuple[Task, mock.MagicMock]) -> None:
    task, client = eager
    client.api.create_container.side_effect = requests.exceptions.ConnectionError("connection refused")
    with pytest.raises(DockerUnavailableError):
        task.apply(("script", "acme", "r", {"script": "true"})).get()
    assert seen_tools == ["script"] * (SETTINGS.docker_retries + 1)


def test_the_sequence_names_each_step_once_and_ends_with_the_run_itself() -> None:
    names = [step.name for step in pipeline.STEPS]
    assert len(set(names)) == len(names) and names[:3] == ["chunk", "refused", "plan"] and names[-1] == "execute"
    assert [s.name for s in pipeline.STEPS if not s.needs_broker] == ["plan", "intrusive", "scope", "split", "execute"]
