"""Launchers for integration tests and benchmarks: real `celery -A tasks worker` processes and DinD daemons.

Like `celery.contrib.testing`, but with real subprocesses: a worker is started from the repository root in its
own process group and is ready once it answers a ping; an inner dockerd runs in a container of the host engine
and is removed, with its volume, whatever happens.

Why here, in bench/ and not in the worker package or in tests/: the worker package ships in the image and these
do not belong in it; imports between the two folders already point one way, tests -> bench (the soak test runs
`bench.soak`), while bench never imports tests/ (bench/common.py names its test tool by string), and bench/ is
type-checked with the rest (mypy `files`) where tests/ is not. Both `tests/integration` and `bench.*` import it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket as socketlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import docker
import docker.errors
import requests.exceptions
from celery import Celery
from docker.models.containers import Container
from docker.types import Mount

from tasks.errors import ToolrunnerError
from tasks.worker.app import app

ROOT = Path(__file__).resolve().parents[1]  # the repository root: where `celery -A tasks` finds the package
DIND_IMAGE = "toolrunner-dind:local"
DIND_LABELS = {"toolrunner.test": "dind"}
# Added to Docker's default set: the smallest addition with which the inner daemon loads images and runs
# hardened tool containers. --privileged and --cap-add ALL fail on these machines (the kernel's bounding
# set lacks CAP_SYS_RESOURCE). Without SYS_ADMIN `docker load` cannot create a mount namespace; without
# NET_ADMIN no inner container starts (runc's init and libnetwork's sandbox setup get EPERM).
CAPABILITIES = ("SYS_ADMIN", "NET_ADMIN")
SECURITY_OPTIONS = ("seccomp=unconfined", "apparmor=unconfined")
_UNREACHABLE = (docker.errors.DockerException, requests.exceptions.RequestException)


class LaunchError(ToolrunnerError):
    """Raised when a worker or an inner dockerd started for a test or a benchmark does not come up."""


# --- Celery workers -----------------------------------------------------------------------------------------------


@dataclass
class Worker:
    """A running worker subprocess and where its log goes."""

    process: subprocess.Popen[bytes]
    name: str
    log: Path
    metrics_url: str = ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        """Stop the worker (warm shutdown by default) and wait for it; SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def kill_group(self) -> None:
        """SIGKILL the worker and its pool children at once, as a crashed or OOM-killed container would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def log_text(self) -> str:
        """Everything the worker logged so far."""
        return self.log.read_text(errors="replace")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socketlib.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_worker(
    log_dir: Path,
    name: str,
    *,
    concurrency: int = 4,
    env: dict[str, str] | None = None,
    pool: str = "prefork",
    queues: str | None = None,
    client: Celery = app,
    cpus: str | None = None,
) -> Worker:
    """Start `celery -A tasks worker` from the repository root and wait until it answers `client`'s ping; with
    cpus (a `taskset -c` list) the worker and its pool children run on those CPUs only."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    command = [
        sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", pool, "--concurrency", str(concurrency),
        "--hostname", f"{name}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    if queues:
        command += ["--queues", queues]
    if cpus:
        command = ["taskset", "-c", cpus, *command]  # taskset execs the worker: the same pid
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its own process group, so a caller can kill worker and children at once
        )
    worker = Worker(process, name, log)
    _wait_ready(worker, client)
    return worker


def _wait_ready(worker: Worker, client: Celery, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise LaunchError(f"worker {worker.name} exited early:\n{worker.log_text()[-4000:]}")
        replies = client.control.ping(timeout=1.0) or []
        if any(name.startswith(f"{worker.name}@") for reply in replies for name in reply):
            return
    worker.stop(signal.SIGKILL)
    raise LaunchError(f"worker {worker.name} did not answer a ping within {timeout}s:\n{worker.log_text()[-4000:]}")


# --- Docker-in-Docker ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InnerDaemon:
    """A running inner dockerd: its client, the host path of its socket, and what hosts it on the outer engine."""

    client: docker.DockerClient
    socket: Path
    container_id: str
    volume: str
    startup_seconds: float
    load_seconds: float

    @property
    def docker_host(self) -> str:
        """The DOCKER_HOST value that reaches the inner daemon from this machine."""
        return f"unix://{self.socket}"


def dockerd_command(socket: Path) -> list[str]:
    """The inner daemon's command line: no bridge, no iptables, its own exec root and pid file."""
    return [
        "dockerd", f"--host=unix://{socket}", "--bridge=none", "--iptables=false",
        "--exec-root=/run/dind", "--pidfile=/run/dind.pid", "--data-root=/var/lib/docker",
    ]  # fmt: skip


@contextlib.contextmanager
def inner_daemon(
    host: docker.DockerClient,
    images: Sequence[str] = (),
    *,
    capabilities: Sequence[str] = CAPABILITIES,
    timeout: float = 60,
    cpuset: str | None = None,
) -> Iterator[InnerDaemon]:
    """Start a DinD container, wait for its daemon and load `images` into it; on exit remove it all, always.
    With cpuset (`0`, `0-1`) the inner daemon and every container it runs are held to those CPUs."""
    with contextlib.ExitStack() as stack:
        started = time.monotonic()
        # The host engine bind-mounts this directory: it must be a path the host daemon sees (same machine).
        directory = Path(tempfile.mkdtemp(prefix="dind-"))
        stack.callback(shutil.rmtree, directory, ignore_errors=True)
        name = f"toolrunner-dind-{secrets.token_hex(4)}"
        host.volumes.create(name=name, labels=DIND_LABELS)
        stack.callback(_remove_volume, host, name)
        container = _create_container(host, name, directory, capabilities, cpuset)
        stack.callback(_remove_container, host, container.id)
        container.start()
        client = _wait_for_daemon(container, directory / "docker.sock", timeout)
        stack.callback(client.close)
        ready = time.monotonic()
        load_images(host, client, images)
        loaded = time.monotonic()
        yield InnerDaemon(client, directory / "docker.sock", container.id, name, ready - started, loaded - ready)


def load_images(host: docker.DockerClient, inner: docker.DockerClient, refs: Sequence[str]) -> None:
    """`docker save | docker load`, streamed chunk by chunk: no image tar is ever held whole in memory."""
    for ref in refs:
        # named=ref keeps this tag in the tar; named=True would use the image's first tag, whichever it is.
        inner.images.load(host.images.get(ref).save(named=ref))


def _create_container(
    host: docker.DockerClient, name: str, directory: Path, capabilities: Sequence[str], cpuset: str | None
) -> Container:
    # Created here, started by the caller once its removal is registered: one that fails to start still goes.
    return host.containers.create(
        DIND_IMAGE,
        dockerd_command(directory / "docker.sock"),
        name=name,
        labels=DIND_LABELS,
        network_mode="host",
        cap_add=list(capabilities),
        security_opt=list(SECURITY_OPTIONS),
        device_cgroup_rules=["a *:* rwm"],
        cpuset_cpus=cpuset,
        mounts=[
            Mount("/var/lib/docker", name, type="volume"),
            Mount("/sys/fs/cgroup", "/sys/fs/cgroup", type="bind"),
            Mount(str(directory), str(directory), type="bind"),
        ],
    )


def _wait_for_daemon(container: Container, socket: Path, timeout: float) -> docker.DockerClient:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.status != "running":
            raise LaunchError(f"the inner dockerd stopped ({container.status}):\n{_logs(container)}")
        client = _answering_client(socket) if _listening(socket) else None
        if client is not None:
            return client
        time.sleep(0.1)
    raise LaunchError(f"the inner dockerd did not answer on {socket} within {timeout}s:\n{_logs(container)}")


def _listening(path: Path) -> bool:
    """Whether something accepts connections on the socket: probed with a socket of our own, always closed,
    because the docker SDK leaks its socket when a connect fails."""
    with socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM) as probe:
        return probe.connect_ex(str(path)) == 0


def _answering_client(socket: Path) -> docker.DockerClient | None:
    """A client of the daemon on socket once it answers a ping (the socket file appears before it serves)."""
    try:
        client = docker.DockerClient(base_url=f"unix://{socket}", timeout=120)
    except _UNREACHABLE:
        return None
    with contextlib.suppress(*_UNREACHABLE):
        if client.ping():
            return client
    client.close()
    return None


def _logs(container: Container) -> str:
    return bytes(container.logs(tail=30)).decode(errors="replace")


def _remove_container(host: docker.DockerClient, container_id: str) -> None:
    # A stop (SIGTERM) lets dockerd stop its own containers and release their cgroups before it exits.
    with contextlib.suppress(docker.errors.NotFound):
        host.api.stop(container_id, timeout=20)
    with contextlib.suppress(docker.errors.NotFound):
        host.api.remove_container(container_id, force=True, v=True)


def _remove_volume(host: docker.DockerClient, name: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        host.api.remove_volume(name, force=True)


T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, what: str) -> T:
    """Poll `check` until it returns something truthy, and return that; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
