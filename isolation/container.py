"""Running one hardened tool container against isolated volumes, with a deadline that really stops it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions
from docker.types import LogConfig, Mount, Ulimit

from isolation import defaults
from isolation.engine import force_remove, translate
from isolation.errors import ImageMissingError, IsolationError
from isolation.image import ensure_image
from isolation.logs import read_logs

logger = logging.getLogger(__name__)

Tick = Callable[[float, int], None]


@dataclass(frozen=True, kw_only=True)
class ContainerLimits:
    """Resource caps of a tool container; every default lives in isolation.defaults.

    memory: "1g" (Docker syntax; swap is capped at the same value, so none), cpus: 1.0,
    pids: 256 processes, tmpfs_size: "64m" for /tmp, file_size_bytes: 1 GiB per written file (RLIMIT_FSIZE),
    log_max_size: "1m" of kept stdout/stderr, nofile: 1024 open files (RLIMIT_NOFILE, soft = hard).
    """

    memory: str = defaults.MEMORY
    cpus: float = defaults.CPUS
    pids: int = defaults.PIDS
    tmpfs_size: str = defaults.TMPFS_SIZE
    file_size_bytes: int = defaults.FILE_SIZE_BYTES
    log_max_size: str = defaults.LOG_MAX_SIZE
    nofile: int = defaults.NOFILE

    def __post_init__(self) -> None:
        if self.cpus <= 0 or self.pids < 1 or self.file_size_bytes < 1 or self.nofile < 16:
            raise ValueError(f"container limits out of range: {self}")


@dataclass(frozen=True, kw_only=True)
class ContainerSpec:
    """What to run: image, entrypoint and argv (a list, never a shell string), mounts and labels."""

    image: str
    entrypoint: Sequence[str]
    argv: Sequence[str]
    mounts: Sequence[Mount]
    labels: Mapping[str, str]
    network: str = defaults.TOOL_NETWORK
    user: str | None = defaults.TOOL_USER
    cap_add: Sequence[str] = ()
    limits: ContainerLimits = field(default_factory=ContainerLimits)
    environment: Mapping[str, str] = field(default_factory=dict)
    image_hint: str = ""
    name: str = ""  # the container's name ("": the engine picks one)
    logs: bool = True  # keep stdout/stderr in a json-file log of limits.log_max_size; False: no log (read by attach)


@dataclass(frozen=True, kw_only=True)
class ContainerResult:
    """How a tool container ended: exit_code is None when it never exited on its own (killed, or never ran)."""

    exit_code: int | None
    timed_out: bool = False
    oom_killed: bool = False
    duration_ms: int = 0
    stdout_tail: str = ""
    stderr_tail: str = ""
    stdout_lines: int = 0
    removed: bool = False  # whether run_container removed the container (False: it failed, or it is unknown)


@dataclass(frozen=True, kw_only=True)
class Watch:
    """What the caller sees of a running tool container.

    on_tick(elapsed seconds, stdout lines) is called every tick_seconds while it runs; the result keeps the last
    tail_bytes of its stdout and of its stderr.
    """

    on_tick: Tick | None = None
    tick_seconds: float = 1.0
    tail_bytes: int = 8192


def run_container(
    client: docker.DockerClient, spec: ContainerSpec, timeout: float, *, watch: Watch = Watch(), pull: bool = True
) -> ContainerResult:
    """Run spec to completion or until timeout (then kill it by id); the container is always removed.

    When the engine lacks the image it is pulled first (with the default pull timeout, not counted in
    timeout); with pull=False ImageMissingError is raised instead, so the caller can pull_image() as its
    own step with its own timeout and then call again.
    """
    container_id: str | None = None
    started = time.monotonic()
    try:
        with translate("run the tool container", context=spec.image):
            container_id = create_container(client, spec, pull=pull)
            client.api.start(container_id)
            started = time.monotonic()
            exited = wait_exit(client, container_id, timeout, started, watch)
            result = _result(client, container_id, exited, started, watch.tail_bytes)
    finally:
        removed = container_id is not None and _force_remove(client, container_id)
    return replace(result, removed=removed)


def create_container(client: docker.DockerClient, spec: ContainerSpec, *, pull: bool) -> str:
    """Create the container; only when the engine lacks the image, pull it (once) and create again."""
    options = _create_options(client, spec)
    try:
        return str(client.api.create_container(**options)["Id"])
    except docker.errors.ImageNotFound as exc:
        if not pull:
            hint = f", or {spec.image_hint}" if spec.image_hint else ""
            raise ImageMissingError(
                f"image {spec.image!r} is not present on the Docker Engine; pull it first{hint}"
            ) from exc
        ensure_image(client, spec.image, spec.image_hint)
        return str(client.api.create_container(**options)["Id"])


def _create_options(client: docker.DockerClient, spec: ContainerSpec) -> dict[str, Any]:
    limits = spec.limits
    host_config = client.api.create_host_config(
        mounts=list(spec.mounts),
        network_mode=spec.network,
        cap_drop=list(defaults.DROPPED_CAPABILITIES),
        cap_add=list(spec.cap_add) or None,
        security_opt=list(defaults.SECURITY_OPTIONS),
        read_only=True,
        tmpfs={"/tmp": f"rw,noexec,nosuid,nodev,size={limits.tmpfs_size}"},
        mem_limit=limits.memory,
        memswap_limit=limits.memory,
        nano_cpus=int(limits.cpus * 1e9),
        pids_limit=limits.pids,
        ulimits=[
            Ulimit(name="fsize", soft=limits.file_size_bytes, hard=limits.file_size_bytes),
            Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
        ],
        log_config=(
            LogConfig(type="json-file", config={"max-size": limits.log_max_size, "max-file": "1"})
            if spec.logs
            else LogConfig(type="none")
        ),
    )
    return {
        **({"name": spec.name} if spec.name else {}),
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


def wait_exit(
    client: docker.DockerClient, container_id: str, timeout: float, started: float, watch: Watch
) -> int | None:
    """Wait for the container to exit; kill it by id at the deadline. Return its exit code, None if it timed out."""
    deadline = started + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            logger.info("tool container %s timed out after %.1fs: killing it", container_id[:12], timeout)
            kill_container(client, container_id)
            return None
        try:
            answer = client.api.wait(container_id, timeout=max(0.05, min(watch.tick_seconds, remaining)))
            return int(answer["StatusCode"])
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
            if not is_read_timeout(exc):
                raise
            if watch.on_tick is not None:
                watch.on_tick(time.monotonic() - started, _stdout_lines(client, container_id))


def is_read_timeout(exc: Exception) -> bool:
    """The SDK reports a wait that ran out of time as ConnectionError wrapping urllib3's ReadTimeoutError."""
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    return any(isinstance(arg, urllib3.exceptions.ReadTimeoutError) for arg in exc.args)


def kill_container(client: docker.DockerClient, container_id: str) -> None:
    """SIGKILL the container and wait up to 10 s for it to stop; one that already exited is no error."""
    try:
        client.api.kill(container_id)
    except docker.errors.APIError as exc:  # 409: it exited in between, which is what we wanted
        logger.debug("kill of %s: %s", container_id[:12], exc)
    try:
        client.api.wait(container_id, timeout=10)
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
        if not is_read_timeout(exc):
            raise
        logger.warning("tool container %s did not stop within 10s of SIGKILL", container_id[:12])


def _stdout_lines(client: docker.DockerClient, container_id: str) -> int:
    return read_logs(client, container_id, stderr=False).stdout.count(b"\n")


def _result(
    client: docker.DockerClient, container_id: str, exited: int | None, started: float, tail_bytes: int
) -> ContainerResult:
    # OOMKilled is only in an inspect. A tool that exited 0 did its job by its own account (a child the OOM killer
    # took is its business), so that run, the common one, skips the inspect: one engine call less per run.
    state = {"ExitCode": 0} if exited == 0 else client.api.inspect_container(container_id)["State"]
    output = read_logs(client, container_id)
    return ContainerResult(
        exit_code=None if state.get("Running") else state.get("ExitCode"),
        timed_out=exited is None,
        oom_killed=bool(state.get("OOMKilled")),
        duration_ms=int((time.monotonic() - started) * 1000),
        stdout_tail=_tail(output.stdout, tail_bytes),
        stderr_tail=_tail(output.stderr, tail_bytes),
        stdout_lines=output.stdout.count(b"\n"),
    )


def _tail(data: bytes, limit: int) -> str:
    return data[-limit:].decode("utf-8", errors="replace") if limit else ""


def _force_remove(client: docker.DockerClient, container_id: str) -> bool:
    try:
        force_remove(client, container_id)
    except IsolationError as exc:
        logger.warning("tool container %s not removed (the sweep or reaper will): %s", container_id[:12], exc)
        return False
    return True
