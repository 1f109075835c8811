"""Task logic in eager mode with a mocked engine: bad input makes no Docker call; an absent engine is retried."""

from __future__ import annotations

from collections.abc import Iterator
from unittest import mock

import docker
import pytest
import requests

from isolation import DockerUnavailableError
from tasks import TaskInputError, app, run_tool


@pytest.fixture
def eager(monkeypatch: pytest.MonkeyPatch) -> Iterator[mock.MagicMock]:
    """Eager mode with a mock Docker client in place of the app's."""
    client = mock.create_autospec(docker.DockerClient, instance=True)
    client.api = mock.MagicMock()
    monkeypatch.setitem(app.__dict__, "docker_client", client)
    app.conf.update(task_always_eager=True)
    yield client
    app.conf.update(task_always_eager=False)


@pytest.mark.parametrize(
    "args",
    [
        ("nope", "acme", "r", {}),
        ("script", "bad tenant", "r", {"script": "true"}),
        ("script", "acme", "r", {"script": "true", "unknown": 1}),
        ("script", "acme", "r", {"script": "true"}, {"/abs": "x"}),
    ],
)
def test_bad_input_fails_without_any_docker_call(eager: mock.MagicMock, args: tuple[object, ...]) -> None:
    with pytest.raises(TaskInputError):
        run_tool.apply(args).get()
    assert eager.mock_calls == []


def test_an_unreachable_engine_is_retried_a_bounded_number_of_times(eager: mock.MagicMock) -> None:
    eager.volumes.create.side_effect = requests.exceptions.ConnectionError("connection refused")
    with pytest.raises(DockerUnavailableError, match="did not answer"):
        run_tool.apply(("script", "acme", "r", {"script": "true"})).get()
    assert eager.volumes.create.call_count == app.settings.docker_retries + 1
