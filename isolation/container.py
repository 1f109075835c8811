"""Running one hardened tool container against isolated volumes, with a deadline that really stops it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions
from docker.types import LogConfig, Mount, Ulimit

from isolation.engine import translate
from isolation.errors import ImageNotFoundError

logger = logging.getLogger(__name__)

Tick = Callable[[float, int], None]


@dataclass(frozen=True)
class ContainerLimits:
    """Resource caps of a tool container."""

    memory: str = "1g"
    cpus: float = 1.0
    pids: int = 256
    tmpfs_size: str = "64m"
    file_size_bytes: int = 1 << 30
    log_max_size: str = "1m"


@dataclass(frozen=True)
class ContainerSpec:
    """What to run: image, entrypoint and argv (a list, never a shell string), mounts and labels."""

    image: str
    entrypoint: Sequence[str]
    argv: Sequence[str]
    mounts: Sequence[Mount]
    labels: Mapping[str, str]
    network: str = "none"
    user: str | None = "65532:65532"
    cap_add: Sequence[str] = ()
    limits: ContainerLimits = field(default_factory=ContainerLimits)
    environment: Mapping[str, str] = field(default_factory=dict)
    image_hint: str = ""


@dataclass(frozen=True)
class ContainerResult:
    """How a tool container ended."""

    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    duration_ms: int
    stdout_tail: str
    stderr_tail: str
    stdout_lines: int


def run_container(
    client: docker.DockerClient,
    spec: ContainerSpec,
    timeout: float,
    *,
    on_tick: Tick | None = None,
    tick_seconds: float = 1.0,
    tail_bytes: int = 8192,
) -> ContainerResult:
    """Run spec to completion or until timeout (then kill it by id); the container is always removed."""
    container_id: str | None = None
    started = time.monotonic()
    try:
        with translate("run the tool container", context=spec.image):
            container_id = _create(client, spec)
            client.api.start(container_id)
            started = time.monotonic()
            timed_out = _wait(client, container_id, timeout, started, on_tick, tick_seconds)
            return _result(client, container_id, timed_out, started, tail_bytes)
    finally:
        if container_id is not None:
            _force_remove(client, container_id)


def _create(client: docker.DockerClient, spec: ContainerSpec) -> str:
    """Create the container; only when the engine lacks the image, pull it (once) and create again."""
    options = _create_options(client, spec)
    try:
        return str(client.api.create_container(**options)["Id"])
    except docker.errors.ImageNotFound:
        ensure_image(client, spec.image, spec.image_hint)
        return str(client.api.create_container(**options)["Id"])


def ensure_image(client: docker.DockerClient, image: str, hint: str = "") -> None:
    """Make sure image is present, pulling it once; raise ImageNotFoundError naming it otherwise."""
    try:
        client.api.inspect_image(image)
        return
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError:
        pass
    logger.info("pulling image %s", image)
    try:
        client.images.pull(image)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise ImageNotFoundError(
            f"image {image!r} is not present on the Docker Engine and could not be pulled ({exc}); "
            f"load or build it there{', or ' + hint if hint else ''}"
        ) from exc


def _create_options(client: docker.DockerClient, spec: ContainerSpec) -> dict[str, Any]:
    limits = spec.limits
    host_config = client.api.create_host_config(
        mounts=list(spec.mounts),
        network_mode=spec.network,
        cap_drop=["ALL"],
        cap_add=list(spec.cap_add) or None,
        security_opt=["no-new-privileges"],
        read_only=True,
        tmpfs={"/tmp": f"rw,noexec,nosuid,nodev,size={limits.tmpfs_size}"},
        mem_limit=limits.memory,
        memswap_limit=limits.memory,
        nano_cpus=int(limits.cpus * 1e9),
        pids_limit=limits.pids,
        ulimits=[Ulimit(name="fsize", soft=limits.file_size_bytes, hard=limits.file_size_bytes)],
        log_config=LogConfig(type="json-file", config={"max-size": limits.log_max_size, "max-file": "1"}),
    )
    return {
        "image": spec.image,
        "entrypoint": list(spec.entrypoint),
        "command": list(spec.argv),
        "user": spec.user or "",
        "labels": dict(spec.labels),
        "environment": {"HOME": "/tmp", **spec.environment},
        "working_dir": "/tmp",
        "network_disabled": spec.network == "none",
        "host_config": host_config,
    }


def _wait(
    client: docker.DockerClient, container_id: str, timeout: float, started: float, on_tick: Tick | None, tick: float
) -> bool:
    """Wait for the container to exit; kill it by id at the deadline. Return whether it timed out."""
    deadline = started + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            logger.info("tool container %s timed out after %.1fs: killing it", container_id[:12], timeout)
            _kill(client, container_id)
            return True
        try:
            client.api.wait(container_id, timeout=max(0.05, min(tick, remaining)))
            return False
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
            if not _is_read_timeout(exc):
                raise
            if on_tick is not None:
                on_tick(time.monotonic() - started, _stdout_lines(client, container_id))


def _is_read_timeout(exc: Exception) -> bool:
    """The SDK reports a wait that ran out of time as ConnectionError wrapping urllib3's ReadTimeoutError."""
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    return any(isinstance(arg, urllib3.exceptions.ReadTimeoutError) for arg in exc.args)


def _kill(client: docker.DockerClient, container_id: str) -> None:
    try:
        client.api.kill(container_id)
    except docker.errors.APIError as exc:  # 409: it exited in between, which is what we wanted
        logger.debug("kill of %s: %s", container_id[:12], exc)
    try:
        client.api.wait(container_id, timeout=10)
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
        if not _is_read_timeout(exc):
            raise
        logger.warning("tool container %s did not stop within 10s of SIGKILL", container_id[:12])


def _stdout_lines(client: docker.DockerClient, container_id: str) -> int:
    return bytes(client.api.logs(container_id, stdout=True, stderr=False)).count(b"\n")


def _result(
    client: docker.DockerClient, container_id: str, timed_out: bool, started: float, tail_bytes: int
) -> ContainerResult:
    state = client.api.inspect_container(container_id)["State"]
    stdout = bytes(client.api.logs(container_id, stdout=True, stderr=False))
    stderr = bytes(client.api.logs(container_id, stdout=False, stderr=True))
    return ContainerResult(
        exit_code=None if state.get("Running") else state.get("ExitCode"),
        timed_out=timed_out,
        oom_killed=bool(state.get("OOMKilled")),
        duration_ms=int((time.monotonic() - started) * 1000),
        stdout_tail=_tail(stdout, tail_bytes),
        stderr_tail=_tail(stderr, tail_bytes),
        stdout_lines=stdout.count(b"\n"),
    )


def _tail(data: bytes, limit: int) -> str:
    return data[-limit:].decode("utf-8", errors="replace") if limit else ""


def _force_remove(client: docker.DockerClient, container_id: str) -> None:
    try:
        client.api.remove_container(container_id, force=True)
    except docker.errors.NotFound:
        pass
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        logger.warning("tool container %s not removed (the sweep will): %s", container_id[:12], exc)
