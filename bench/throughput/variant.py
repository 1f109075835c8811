"""The throughput benchmark's two variants: a round through a real Celery worker and a round of a plain SDK loop."""

from __future__ import annotations

import json
import os
import re
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import docker
import redis

from bench.common import BUSYBOX, BenchError, percentile, worker_env
from tasks.service import Status
from tasks.worker import app, run_tool

BROKER = "redis://127.0.0.1:6379/14"  # the default of --redis-url
PARAMS = {"script": "echo ok > /outputs/out.txt", "outputs": ["out.txt"]}
EXPECTED_FINDINGS = [{"file": "out.txt", "line": "ok"}]
PLAIN_LABEL = "toolrunner.bench"  # the plain loop's containers are not the project's: a label of their own
POLL_SECONDS = 0.01
RESULT_TIMEOUT_SECONDS = 600.0
READY_STATES = (b'"SUCCESS"', b'"FAILURE"', b'"REVOKED"')
TASK_LINE = re.compile(
    r"^\[(?P<at>[\d-]+ [\d:]+,\d{3}): INFO/\S+\] Task toolrunner\.run_tool\[(?P<id>[0-9a-f-]+)\] "
    r"(?:received|succeeded in (?P<seconds>[0-9.e-]+)s)",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Run:
    """One run: client-side time.monotonic() stamps, whether it did the job, the worker's own timings."""

    submitted: float
    started: float
    done: float
    ok: bool
    task_id: str = ""
    execute_ms: float | None = None
    error: str = ""


@dataclass(frozen=True)
class Measurement:
    """The runs of one variant in one round (or pooled over rounds) and their wall time."""

    variant: str
    label: str
    runs: list[Run]
    wall_seconds: float
    cpu_seconds: Mapping[str, float] = field(default_factory=dict)

    @property
    def runs_per_second(self) -> float:
        return len(self.runs) / self.wall_seconds

    def latency_ms(self, percent: int) -> float:
        return percentile([(r.done - r.submitted) * 1000 for r in self.runs], percent)

    def mean_ms(self, start: Callable[[Run], float], end: Callable[[Run], float]) -> float:
        return statistics.fmean((end(r) - start(r)) * 1000 for r in self.runs)


@dataclass(frozen=True)
class ThroughputBench:
    """What every phase needs: the client, the concurrency, this benchmark's tenants and nonce."""

    client: docker.DockerClient
    concurrency: int
    tenants: list[str]
    nonce: str
    worker_pid: int = 0


def pooled(measurements: Sequence[Measurement]) -> Measurement:
    """All rounds of one variant as one measurement: runs concatenated, wall times summed."""
    runs = [run for m in measurements for run in m.runs]
    cpu = {name: sum(m.cpu_seconds.get(name, 0.0) for m in measurements) for name in measurements[0].cpu_seconds}
    return Measurement(measurements[0].variant, "all rounds", runs, sum(m.wall_seconds for m in measurements), cpu)


def configure_environment(redis_url: str) -> dict[str, str]:
    """Point this process (whose app reads settings on first use) and the worker at redis_url; return that env."""
    env = worker_env(redis_url)
    os.environ.update(env)
    if "settings" in app.__dict__:
        raise BenchError("the Celery app read its settings before the benchmark configured them")
    with redis.Redis.from_url(redis_url) as conn:
        conn.flushdb()
    return env


def toolrunner_round(bench: ThroughputBench, runs: int, label: str) -> Measurement:
    """Enqueue every run at once, then poll until each has a result."""
    submitted: dict[str, float] = {}
    for i in range(runs):
        at = time.monotonic()
        run_id = f"{label.replace(' ', '-')}-{i}"
        result = run_tool.delay("script", bench.tenants[i % len(bench.tenants)], run_id, PARAMS)
        submitted[result.id] = at
    done = collect(submitted)
    return Measurement("toolrunner", label, done, max(r.done for r in done) - min(submitted.values()))


def collect(submitted: Mapping[str, float]) -> list[Run]:
    """Poll every pending result key with one MGET every 10 ms until all are ready."""
    keys = {task_id: app.backend.get_key_for_task(task_id) for task_id in submitted}
    started: dict[str, float] = {}
    runs: dict[str, Run] = {}
    deadline = time.monotonic() + RESULT_TIMEOUT_SECONDS
    while len(runs) < len(submitted):
        if time.monotonic() > deadline:
            raise BenchError(f"{len(submitted) - len(runs)} results did not arrive in {RESULT_TIMEOUT_SECONDS}s")
        pending = [task_id for task_id in submitted if task_id not in runs]
        values = app.backend.client.mget([keys[task_id] for task_id in pending])
        now = time.monotonic()
        for task_id, raw in zip(pending, values, strict=True):
            if raw is not None:
                started.setdefault(task_id, now)
                if any(state in raw for state in READY_STATES):  # cheap test first: most keys are not ready
                    runs[task_id] = parse_result(task_id, submitted[task_id], started[task_id], now, raw)
        time.sleep(POLL_SECONDS)
    return [runs[task_id] for task_id in submitted]


def parse_result(task_id: str, submitted: float, started: float, done: float, raw: bytes) -> Run:
    """A Run from a result-backend value; ok only for status ok with the one expected finding."""
    meta = json.loads(raw)
    result = meta.get("result") if meta.get("status") == "SUCCESS" else None
    if not isinstance(result, dict):
        return Run(submitted, started, done, False, task_id, None, f"{meta.get('status')}: {meta.get('result')}")
    ok = result.get("status") == Status.OK and result.get("findings") == EXPECTED_FINDINGS
    error = "" if ok else f"{result.get('status')}: {result.get('reason')}"
    return Run(submitted, started, done, ok, task_id, float(result["stats"]["duration_ms"]), error)


@dataclass(frozen=True)
class WorkerTiming:
    """One task as the worker log tells it: received by the main process, finished in a child, runtime there."""

    received: float
    finished: float
    runtime_ms: float

    @property
    def dispatch_ms(self) -> float:
        """From the main process receiving the message to the child starting the task."""
        return (self.finished - self.received) * 1000 - self.runtime_ms


def worker_timings(log: Path) -> dict[str, WorkerTiming]:
    """Task id -> its timing, from the worker log's "received" and "succeeded in" lines."""
    received: dict[str, float] = {}
    timings: dict[str, WorkerTiming] = {}
    for match in TASK_LINE.finditer(log.read_text(errors="replace")):
        at = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if match["seconds"] is None:
            received[match["id"]] = at
        elif match["id"] in received:
            timings[match["id"]] = WorkerTiming(received[match["id"]], at, float(match["seconds"]) * 1000)
    return timings


def plain_round(bench: ThroughputBench, runs: int, label: str) -> Measurement:
    """Submit every run to a pool of `concurrency` threads at once and wait for all."""
    labels = {PLAIN_LABEL: bench.nonce}
    with ThreadPoolExecutor(bench.concurrency) as pool:
        futures = [pool.submit(plain_run, bench.client, labels, time.monotonic()) for _ in range(runs)]
        done = [future.result() for future in futures]
    return Measurement("plain", label, done, max(r.done for r in done) - min(r.submitted for r in done))


def plain_run(client: docker.DockerClient, labels: Mapping[str, str], submitted: float) -> Run:
    """Run, wait for, read and remove one `echo ok` container."""
    started = time.monotonic()
    container = client.containers.run(
        BUSYBOX, ["sh", "-c", "echo ok"], network_mode="none", detach=True, labels=dict(labels)
    )
    try:
        container.wait()
        ok = container.logs() == b"ok\n"
    finally:
        container.remove(force=True)
    return Run(submitted, started, time.monotonic(), ok)


def new_client(concurrency: int) -> docker.DockerClient:
    """A client from the environment with a connection per thread."""
    return docker.from_env(max_pool_size=max(10, concurrency))
