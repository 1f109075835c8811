"""Image presence and pulls against a fake low-level API: errors and deadlines (no Docker)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest
import requests
import requests.exceptions
import urllib3.exceptions

from isolation import (
    DockerUnavailableError,
    ImageNotFoundError,
    ImagePullError,
    ImagePullTimeoutError,
    ensure_image,
    image_present,
    pull_image,
)

Line = bytes | Callable[[], bytes]


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeResponse:
    """What requests returns for the engine's streamed POST /images/create."""

    def __init__(self, status: int = 200, lines: list[Line] | None = None, body: bytes = b"") -> None:
        self.status_code, self._lines, self._body = status, lines or [], body
        self.raw = SimpleNamespace(connection=None)
        self.closed = False

    def iter_lines(self) -> Iterator[bytes]:
        for line in self._lines:
            yield line() if callable(line) else line

    def json(self) -> Any:
        return json.loads(self._body)

    @property
    def text(self) -> str:
        return self._body.decode()

    def close(self) -> None:
        self.closed = True


class FakeAPI:
    """The parts of docker's APIClient that image.py uses."""

    base_url = "http+docker://localhost"
    api_version = "1.45"
    credstore_env = None

    def __init__(self, response: FakeResponse | Exception | None = None, inspect: Exception | None = None) -> None:
        self._auth_configs: Any = None
        self.response, self.inspect_error = response, inspect
        self.posts: list[tuple[str, dict[str, Any]]] = []

    def inspect_image(self, image: str) -> dict[str, Any]:
        if self.inspect_error is not None:
            raise self.inspect_error
        return {"Id": "sha256:0"}

    def post(self, url: str, **options: Any) -> FakeResponse:
        self.posts.append((url, options))
        if isinstance(self.response, Exception):
            raise self.response
        assert self.response is not None, "the test did not expect a pull"
        return self.response


class FakeClient:
    """A DockerClient whose high-level pull only records that it was called."""

    def __init__(self, api: FakeAPI) -> None:
        self.api = api
        self.pulled: list[str] = []
        self.images = SimpleNamespace(pull=self.pulled.append)


def event(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def api_error(status: int, message: str, kind: type[docker.errors.APIError] = docker.errors.APIError) -> Exception:
    response = requests.Response()
    response.status_code = status
    error: Exception = kind(message, response=response, explanation=message)
    return error


def pull(client: FakeClient, image: str = "registry.test/tool:1", **options: Any) -> None:
    options.setdefault("timeout_seconds", 60)
    pull_image(client, image, **options)


def test_a_pull_that_finishes_posts_the_repository_and_tag_with_a_bounded_read() -> None:
    response = FakeResponse(lines=[event(status="Pulling fs layer"), b"", event(status="Downloaded newer image")])
    client = FakeClient(FakeAPI(response))
    pull(client, timeout_seconds=30)
    ((url, options),) = client.api.posts
    assert url.endswith("/v1.45/images/create")
    assert options["params"] == {"fromImage": "registry.test/tool", "tag": "1"}
    assert options["stream"] is True and options["timeout"][1] == 30
    assert response.closed


def test_a_pull_still_running_at_its_deadline_stops_waiting_and_closes_its_connection() -> None:
    clock = FakeClock()

    def slow_progress() -> bytes:
        clock.now += 10
        return event(status="Downloading", progress="[=>   ]")

    response = FakeResponse(lines=[slow_progress] * 100)
    with pytest.raises(ImagePullTimeoutError, match="did not finish in time; stopped waiting"):
        pull(FakeClient(FakeAPI(response)), timeout_seconds=25, clock=clock)
    assert response.closed


def test_a_read_that_stalls_until_the_socket_times_out_is_a_pull_timeout() -> None:
    def stalled() -> bytes:
        raise requests.exceptions.ConnectionError(
            urllib3.exceptions.ReadTimeoutError(None, "/images/create", "Read timed out.")  # type: ignore[arg-type]
        )

    response = FakeResponse(lines=[event(status="Pulling"), stalled])
    with pytest.raises(ImagePullTimeoutError):
        pull(FakeClient(FakeAPI(response)))
    assert response.closed


def test_a_progress_stream_that_breaks_off_is_a_pull_error() -> None:
    def cut() -> bytes:
        raise requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead(0 bytes read)")

    with pytest.raises(ImagePullError, match="broke off"):
        pull(FakeClient(FakeAPI(FakeResponse(lines=[event(status="Pulling"), cut]))))


def test_an_engine_that_sends_no_headers_before_the_deadline_is_a_pull_timeout() -> None:
    with pytest.raises(ImagePullTimeoutError):
        pull(FakeClient(FakeAPI(requests.exceptions.ReadTimeout("Read timed out."))))


def test_a_connection_refused_by_the_engine_is_docker_unavailable() -> None:
    with pytest.raises(DockerUnavailableError):
        pull(FakeClient(FakeAPI(requests.exceptions.ConnectionError("Connection refused"))))


@pytest.mark.parametrize(
    ("status", "message", "error"),
    [
        (404, "manifest for registry.test/tool:1 not found: manifest unknown", ImageNotFoundError),
        (403, "pull access denied for registry.test/tool", ImageNotFoundError),
        (500, 'Get "https://registry.test/v2/": dial tcp: connection refused', ImagePullError),
    ],
)
def test_an_engine_refusal_names_the_image_and_says_whether_the_registry_lacks_it(
    status: int, message: str, error: type[ImagePullError]
) -> None:
    response = FakeResponse(status, body=json.dumps({"message": message}).encode())
    with pytest.raises(error, match=r"'registry\.test/tool:1'.*load or build it there, or set X") as caught:
        pull(FakeClient(FakeAPI(response)), hint="set X")
    assert type(caught.value) is error
    assert response.closed


@pytest.mark.parametrize(
    ("message", "error"),
    [("manifest unknown", ImageNotFoundError), ("unexpected EOF while downloading a layer", ImagePullError)],
)
def test_an_error_message_in_the_progress_stream_fails_the_pull(message: str, error: type[ImagePullError]) -> None:
    response = FakeResponse(lines=[event(status="Pulling"), event(error=message, errorDetail={"message": message})])
    with pytest.raises(error, match=message) as caught:
        pull(FakeClient(FakeAPI(response)))
    assert type(caught.value) is error


def test_a_malformed_progress_message_fails_the_pull_inside_the_error_tree() -> None:
    with pytest.raises(ImagePullError, match="malformed"):
        pull(FakeClient(FakeAPI(FakeResponse(lines=[b"{not json"]))))


@pytest.mark.parametrize("timeout", [0, -1])
def test_a_pull_needs_a_positive_timeout(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout_seconds"):
        pull(FakeClient(FakeAPI()), timeout_seconds=timeout)


def test_an_engine_server_error_while_inspecting_is_raised_not_taken_for_a_missing_image() -> None:
    client = FakeClient(FakeAPI(inspect=api_error(500, "layer store is broken")))
    with pytest.raises(DockerUnavailableError, match="layer store is broken"):
        ensure_image(client, "toolrunner-tools:local")
    assert client.pulled == [] and client.api.posts == []


def test_a_present_image_is_never_pulled() -> None:
    client = FakeClient(FakeAPI())
    ensure_image(client, "toolrunner-tools:local")
    assert image_present(client, "toolrunner-tools:local")
    assert client.api.posts == []


def test_a_missing_image_is_pulled_once_with_the_given_timeout() -> None:
    missing = api_error(404, "No such image", docker.errors.ImageNotFound)
    client = FakeClient(FakeAPI(FakeResponse(lines=[event(status="done")]), inspect=missing))
    assert not image_present(client, "tool:2")
    ensure_image(client, "tool:2", timeout_seconds=5)
    ((_, options),) = client.api.posts
    assert options["params"] == {"fromImage": "tool", "tag": "2"} and options["timeout"][1] == 5
