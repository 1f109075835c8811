"""Tool images: whether the engine has one, and pulling one as its own step with its own deadline."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from typing import Any, Protocol

import docker
import docker.auth
import docker.errors
import docker.utils
import requests
import requests.exceptions
import urllib3.exceptions

from isolation.defaults import PULL_TIMEOUT_SECONDS
from isolation.engine import translate
from isolation.errors import ImageMissingError, ImageNotFoundError, ImagePullError, ImagePullTimeoutError

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
CONNECT_TIMEOUT_SECONDS = 10.0
# Words the engine uses when a registry has no such repository or tag (it reports them mid-stream on
# some paths, after the HTTP status was already sent as 200).
_NOT_FOUND_WORDS = ("not found", "manifest unknown", "does not exist", "pull access denied")


class PullEvents(Protocol):
    """The engine's progress messages of one pull, each read with its own time limit."""

    def next_event(self, timeout: float) -> Mapping[str, Any] | None:
        """The next message, None at the end; raises TimeoutError when none arrives within timeout."""
        ...

    def close(self) -> None:
        """Drop the connection to the engine (which may go on fetching what it had started)."""
        ...


def image_present(client: docker.DockerClient, image: str) -> bool:
    """Whether the engine has image; an engine error is raised, never read as "absent"."""
    return present_id(client, image) is not None


def present_id(client: docker.DockerClient, image: str) -> str | None:
    """The ID of image on the engine (`sha256:...`), None when it has none; an engine error is raised."""
    found = _inspected(client, image)
    return None if found is None else str(found["Id"])


def _inspected(client: docker.DockerClient, image: str) -> Mapping[str, Any] | None:
    with translate("inspect the image", context=image):
        try:
            found: Mapping[str, Any] = client.api.inspect_image(image)
            return found
        except docker.errors.ImageNotFound:
            return None


def _labels(inspected: Mapping[str, Any]) -> dict[str, str]:
    config = inspected.get("Config") or {}
    return {str(key): str(value) for key, value in (config.get("Labels") or {}).items()}


class SeenImages:
    """Image references one worker has seen on its engine: once seen, `present` answers without asking again.

    Only presence is kept (an absent image is asked about every time), so a run whose image was removed from the
    engine since learns it at the tool container's create (ImageMissingError); the caller then forgets it here and
    pulls. Thread-safe: a worker's threads share one.
    """

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}  # reference -> the image ID the inspect that saw it found
        self._labels: dict[str, dict[str, str]] = {}  # reference -> its labels, from the same inspect
        self._lock = threading.Lock()

    def present(self, client: docker.DockerClient, image: str) -> bool:
        """Whether the engine has image: from memory once seen, else by one inspect."""
        with self._lock:
            if image in self._seen:
                return True
        found = _inspected(client, image)
        if found is not None:
            with self._lock:
                self._seen[image], self._labels[image] = str(found["Id"]), _labels(found)
        return found is not None

    def id_of(self, image: str) -> str:
        """The ID the engine gave image when this worker saw it ('' before it has): what the audit records."""
        with self._lock:
            return self._seen.get(image, "")

    def labels_of(self, image: str) -> dict[str, str]:
        """The labels image had when this worker saw it ({} before it has)."""
        with self._lock:
            return dict(self._labels.get(image, {}))

    def forget(self, image: str) -> bool:
        """Drop image from memory; whether it was there (a run then knows its answer came from memory)."""
        with self._lock:
            self._labels.pop(image, None)
            return self._seen.pop(image, None) is not None


def image_id(client: docker.DockerClient, image: str) -> str:
    """The content id (sha256:...) of the local image a reference names now; ImageMissingError when absent."""
    with translate("inspect the image", context=image):
        try:
            return str(client.api.inspect_image(image)["Id"])
        except docker.errors.ImageNotFound as exc:
            raise ImageMissingError(f"image {image} is not on the engine") from exc


def image_labels(client: docker.DockerClient, image: str) -> dict[str, str]:
    """The labels of the local image a reference names ({} for none); ImageMissingError when absent."""
    found = _inspected(client, image)
    if found is None:
        raise ImageMissingError(f"image {image} is not on the engine")
    return _labels(found)


def ensure_image(
    client: docker.DockerClient, image: str, hint: str = "", *, timeout_seconds: float = PULL_TIMEOUT_SECONDS
) -> None:
    """Make sure image is present, pulling it once within timeout_seconds when it is not."""
    if not image_present(client, image):
        pull_image(client, image, timeout_seconds=timeout_seconds, hint=hint)


def pull_image(
    client: docker.DockerClient, image: str, *, timeout_seconds: float, hint: str = "", clock: Clock = time.monotonic
) -> None:
    """Pull image; stop waiting with ImagePullTimeoutError once timeout_seconds have passed.

    ImageNotFoundError when the registry has no such image; ImagePullError when the pull fails otherwise.
    At the deadline the connection is closed and the call returns, but the engine is not told to stop:
    Docker Engine 20.10 was seen fetching the blobs it had started for 35 s after the client left (a
    later pull of the same image picks up what it fetched). The deadline bounds the caller's wait.
    """
    if timeout_seconds <= 0:
        raise ValueError("timeout_seconds must be > 0")
    deadline = clock() + timeout_seconds
    logger.info("pulling image %s (timeout %gs)", image, timeout_seconds)
    with translate("pull the image", context=image):
        events = _open_pull(client, image, timeout_seconds, hint)
        try:
            follow_pull(events, image, deadline=deadline, clock=clock, hint=hint)
        finally:
            events.close()
    logger.info("pulled image %s", image)


def follow_pull(events: PullEvents, image: str, *, deadline: float, clock: Clock, hint: str = "") -> None:
    """Read progress messages until the pull ends, raising on an error message or at the deadline."""
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            raise _timed_out(image, hint)
        try:
            event = events.next_event(remaining)
        except TimeoutError:
            raise _timed_out(image, hint) from None
        if event is None:
            return
        if "error" in event or "errorDetail" in event:
            raise _pull_failed(image, _message(event), hint)


def _open_pull(client: docker.DockerClient, image: str, read_timeout: float, hint: str) -> PullEvents:
    """POST /images/create ourselves: docker-py's pull() reads without any time limit."""
    api = client.api
    repository, tag = docker.utils.parse_repository_tag(image)
    registry, _ = docker.auth.resolve_repository_name(repository)
    headers = {}
    if header := docker.auth.get_config_header(api, registry):
        headers["X-Registry-Auth"] = header
    try:
        response = api.post(
            f"{api.base_url}/v{api.api_version}/images/create",
            params={"fromImage": repository, "tag": tag or "latest"},
            headers=headers,
            stream=True,
            timeout=(CONNECT_TIMEOUT_SECONDS, read_timeout),
        )
    except requests.exceptions.ReadTimeout as exc:  # the engine sends headers only once the registry answered
        raise _timed_out(image, hint) from exc
    if response.status_code >= 400:
        with closing(response):
            raise _pull_failed(image, _error_body(response), hint, status=response.status_code)
    return _ResponseEvents(response)


class _ResponseEvents:
    """PullEvents over a streamed HTTP response: each read's socket timeout is the time left."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response
        self._lines: Iterator[bytes] = response.iter_lines()

    def next_event(self, timeout: float) -> Mapping[str, Any] | None:
        self._set_read_timeout(timeout)
        try:
            line = next(self._lines, None)
            while line is not None and not line.strip():
                line = next(self._lines, None)
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
            if _is_timeout(exc):
                raise TimeoutError(str(exc)) from exc
            raise ImagePullError(f"the engine's pull progress stream broke off: {exc}") from exc
        if line is None:
            return None
        try:
            return dict(json.loads(line))
        except ValueError as exc:
            raise ImagePullError(f"the engine sent a malformed pull progress message: {line[:200]!r}") from exc

    def close(self) -> None:
        self._response.close()

    def _set_read_timeout(self, timeout: float) -> None:
        # The read timeout given to post() bounds each wait once; narrow it to the time left before every
        # read so a stalled registry cannot hold the pull past its deadline.
        sock = getattr(getattr(self._response.raw, "connection", None), "sock", None)
        if sock is not None:
            sock.settimeout(max(timeout, 0.01))


def _is_timeout(exc: Exception) -> bool:
    if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, requests.exceptions.ReadTimeout)):
        return True
    return any(isinstance(arg, (urllib3.exceptions.ReadTimeoutError, TimeoutError)) for arg in exc.args)


def _error_body(response: requests.Response) -> str:
    try:
        return str(response.json().get("message") or response.text)
    except ValueError:
        return response.text


def _message(event: Mapping[str, Any]) -> str:
    detail = event.get("errorDetail")
    if isinstance(detail, Mapping) and detail.get("message"):
        return str(detail["message"])
    return str(event.get("error") or event)


def _pull_failed(image: str, message: str, hint: str, *, status: int | None = None) -> ImagePullError:
    advice = f"load or build it there{', or ' + hint if hint else ''}"
    if status in (401, 403, 404) or any(w in message.lower() for w in _NOT_FOUND_WORDS):
        return ImageNotFoundError(
            f"image {image!r} is not on the engine and the registry has none ({message}); {advice}"
        )
    return ImagePullError(f"image {image!r} is not on the engine and could not be pulled: {message}; {advice}")


def _timed_out(image: str, hint: str) -> ImagePullTimeoutError:
    extra = f"; or {hint}" if hint else ""
    return ImagePullTimeoutError(
        f"pulling image {image!r} did not finish in time; stopped waiting for it; "
        f"raise the pull timeout or load the image onto the engine beforehand{extra}"
    )
