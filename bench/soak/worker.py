"""The soak's engine (the host's, or an inner dockerd it may restart), its worker incarnations and its samplers."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import docker
import docker.errors
import redis
import requests.exceptions
from celery import Celery

from bench import common
from bench.common import BUSYBOX, BenchError, count_managed
from bench.launch import InnerDaemon, Worker, inner_daemon, start_worker
from bench.soak.plan import Observed
from config import Settings, celery_config

LABEL_PREFIX = "soak"
WORKER_NAME = "soak"
# A killed worker's runs come back after 16 s; live workers renew theirs every 5 s (at most a third of it).
LIMITS: dict[str, Any] = {
    "max_timeout_seconds": 10, "time_limit_margin_seconds": 2, "visibility_timeout_seconds": 16,
    "visibility_heartbeat_seconds": 5,
}  # fmt: skip


@dataclass(frozen=True)
class Engine:
    """The worker's Docker engine: a client, the DOCKER_HOST reaching it (None: the default) and how to restart it."""

    client: docker.DockerClient
    docker_host: str | None
    restart: Callable[[], None] | None


@contextlib.contextmanager
def engine(use_dind: bool) -> Iterator[Engine]:
    """The host engine, or a DinD inner daemon with the busybox image loaded, removed on exit whatever happens."""
    host = docker.from_env(timeout=120)
    try:
        if not use_dind:
            yield Engine(host, None, None)
            return
        with inner_daemon(host, [BUSYBOX]) as daemon:
            yield Engine(daemon.client, daemon.docker_host, partial(restart_inner, host, daemon))
    finally:
        host.close()


def restart_inner(host: docker.DockerClient, daemon: InnerDaemon) -> None:
    """Stop the inner dockerd (SIGTERM: it stops its containers first) and start it again; wait until it answers."""
    host.api.stop(daemon.container_id, timeout=60)
    host.api.start(daemon.container_id)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(docker.errors.DockerException, requests.exceptions.RequestException):
            if daemon.client.ping():
                return
        time.sleep(0.1)
    raise BenchError("the inner dockerd did not answer within 60s of its restart")


def leftovers(client: docker.DockerClient) -> tuple[int, int]:
    """soak.managed (volumes, containers) on the engine."""
    return count_managed(client, LABEL_PREFIX)


def soak_settings(redis_url: str) -> Settings:
    """The settings producer and workers share (explicit values win over any TOOLRUNNER_* environment)."""
    return Settings(
        broker_url=redis_url, result_backend=redis_url, label_prefix=LABEL_PREFIX, tool_network="none", **LIMITS
    )


def worker_env(redis_url: str, docker_host: str | None) -> dict[str, str]:
    """The workers' environment: the soak's database, label prefix and limits, and the engine to use."""
    env = {
        **common.worker_env(redis_url),
        "TOOLRUNNER_LABEL_PREFIX": LABEL_PREFIX,
        **{f"TOOLRUNNER_{key.upper()}": str(value) for key, value in LIMITS.items()},
    }
    return {**env, "DOCKER_HOST": docker_host} if docker_host else env


def producer_app(redis_url: str) -> Celery:
    """A producer on the soak's Redis database, configured like the workers."""
    producer = Celery("soak-client", set_as_current=False)
    producer.conf.update(celery_config(soak_settings(redis_url)))
    return producer


class Workers:
    """The worker's successive incarnations (one per SIGKILL), all with the same hostname, logs apart."""

    def __init__(self, log_dir: Path, concurrency: int, env: Mapping[str, str], producer: Celery) -> None:
        self.log_dir, self.concurrency, self.env, self.producer = log_dir, concurrency, dict(env), producer
        self.all: list[Worker] = []

    @property
    def current(self) -> Worker:
        return self.all[-1]

    def start(self) -> None:
        log_dir = self.log_dir / f"incarnation-{len(self.all):02d}"
        worker = start_worker(log_dir, WORKER_NAME, concurrency=self.concurrency, env=self.env, client=self.producer)
        self.all.append(worker)

    def kill_and_replace(self) -> None:
        self.current.kill_group()
        self.start()

    def hostname(self) -> str:
        replies = self.producer.control.ping(timeout=2.0) or []
        return str(next(name for reply in replies for name in reply if name.startswith(f"{WORKER_NAME}@")))

    def stop(self) -> None:
        for worker in self.all:
            if worker.process.poll() is None:
                worker.stop()

    def logs(self) -> str:
        return "".join(w.log_text() for w in self.all if w.log.exists())


def tree_rss_bytes(pid: int) -> int:
    """VmRSS of a process and all its descendants, from /proc."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        with contextlib.suppress(OSError, ValueError):
            status = Path(f"/proc/{current}/status").read_text()
            # A zombie (exited, not yet reaped) has no VmRSS line: it counts 0 and the sampler goes on.
            rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
            total += rss * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(child) for child in (task / "children").read_text().split())
    return total


@contextlib.contextmanager
def rss_sampler(workers: Workers, observed: Observed) -> Iterator[None]:
    """Sample the current worker's process-tree RSS every 0.5 s into observed.peak_rss_bytes."""
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            with contextlib.suppress(IndexError):
                observed.peak_rss_bytes = max(observed.peak_rss_bytes, tree_rss_bytes(workers.current.process.pid))

    thread = threading.Thread(target=sample, daemon=True, name="soak-rss")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def result_listener(conn: redis.Redis, keys: Mapping[str, str], observed: Observed) -> Iterator[None]:
    """Record every SUCCESS result published on the runs' result keys (Celery publishes each store)."""
    task_of = {key: task_id for task_id, key in keys.items()}

    def handle(message: Mapping[str, Any]) -> None:
        meta = json.loads(message["data"])
        if meta.get("status") == "SUCCESS" and isinstance(meta.get("result"), dict):
            observed.published.setdefault(task_of[message["channel"].decode()], []).append(meta["result"])

    pubsub = conn.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(**dict.fromkeys(keys.values(), handle))
    thread = pubsub.run_in_thread(sleep_time=0.05, daemon=True)
    try:
        yield
    finally:
        time.sleep(0.5)  # let the last messages arrive
        thread.stop()
        thread.join(10)
        pubsub.close()
