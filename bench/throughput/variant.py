"""The throughput benchmark's variants: a round through a real Celery worker, and rounds of the two SDK floors."""

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
from functools import partial
from pathlib import Path

import docker
import redis
from docker.types import Mount

from bench.common import BenchError, percentile, worker_env
from bench.throughput.workload import WORK, Workload, archived_file, inputs_archive
from tasks.service import Status
from tasks.worker import app, run_tool

BROKER = "redis://127.0.0.1:6379/14"  # the default of --redis-url
FLOOR_LABEL = "toolrunner.bench"  # the floors' containers and volumes are not the project's: a label of their own
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
    """What every phase needs: the client, the concurrency, this benchmark's tenants and nonce, what it runs."""

    client: docker.DockerClient
    concurrency: int
    tenants: list[str]
    nonce: str
    workload: Workload
    worker_pid: int = 0


def pooled(measurements: Sequence[Measurement]) -> Measurement:
    """All rounds of one variant as one measurement: runs concatenated, wall times summed."""
    runs = [run for m in measurements for run in m.runs]
    cpu = {name: sum(m.cpu_seconds.get(name, 0.0) for m in measurements) for name in measurements[0].cpu_seconds}
    return Measurement(measurements[0].variant, "all rounds", runs, sum(m.wall_seconds for m in measurements), cpu)


def configure_environment(redis_url: str, extra: Mapping[str, str]) -> dict[str, str]:
    """Point this process (whose app reads settings on first use) and the worker at redis_url, with `extra`
    settings; return that env."""
    env = {**worker_env(redis_url), **extra}
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
        result = run_tool.delay(
            bench.workload.tool, bench.tenants[i % len(bench.tenants)], run_id, bench.workload.params
        )
        submitted[result.id] = at
    done = collect(submitted, bench.workload)
    return Measurement("toolrunner", label, done, max(r.done for r in done) - min(submitted.values()))


def collect(submitted: Mapping[str, float], workload: Workload) -> list[Run]:
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
                    runs[task_id] = parse_result(task_id, (submitted[task_id], started[task_id], now), raw, workload)
        time.sleep(POLL_SECONDS if len(pending) > 1 else POLL_SECONDS / 5)  # one run alone: its latency counts
    return [runs[task_id] for task_id in submitted]


def parse_result(task_id: str, stamps: tuple[float, float, float], raw: bytes, workload: Workload) -> Run:
    """A Run from a result-backend value; ok only for status ok with the expected findings."""
    submitted, started, done = stamps
    meta = json.loads(raw)
    result = meta.get("result") if meta.get("status") == "SUCCESS" else None
    if not isinstance(result, dict):
        return Run(submitted, started, done, False, task_id, None, f"{meta.get('status')}: {meta.get('result')}")
    ok = result.get("status") == Status.OK and workload.findings_ok(result.get("findings"))
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


def floor_round(bench: ThroughputBench, runs: int, label: str, *, files: bool) -> Measurement:
    """Submit every run of a floor (bare, or moving files) to a pool of `concurrency` threads at once; wait."""
    run = partial(files_run if files else bare_run, bench.client, bench.workload, {FLOOR_LABEL: bench.nonce})
    with ThreadPoolExecutor(bench.concurrency) as pool:
        futures = [pool.submit(run, time.monotonic()) for _ in range(runs)]
        done = [future.result() for future in futures]
    variant = "files floor" if files else "bare floor"
    return Measurement(variant, label, done, max(r.done for r in done) - min(r.submitted for r in done))


def bare_run(client: docker.DockerClient, workload: Workload, labels: Mapping[str, str], submitted: float) -> Run:
    """Run, wait for, read (its stdout) and remove one container: no volume."""
    started = time.monotonic()
    container = client.containers.run(
        workload.image, list(workload.bare_argv), entrypoint=list(workload.entrypoint), user=workload.user,
        network_mode=workload.network, detach=True, labels=dict(labels),
    )  # fmt: skip
    try:
        container.wait()
        ok = workload.report_ok(container.logs(stderr=False))
    finally:
        container.remove(force=True)
    return Run(submitted, started, time.monotonic(), ok)


def files_run(client: docker.DockerClient, workload: Workload, labels: Mapping[str, str], submitted: float) -> Run:
    """One volume, one put_archive of the input, the run, one get_archive of the report, both removed."""
    started = time.monotonic()
    volume = client.api.create_volume(labels=dict(labels))["Name"]
    try:
        container = client.api.create_container(
            workload.image, list(workload.files_argv), entrypoint=list(workload.entrypoint), user=workload.user,
            labels=dict(labels), host_config=client.api.create_host_config(
                network_mode=workload.network, mounts=[Mount(WORK, volume, type="volume")]
            ),
        )["Id"]  # fmt: skip
        try:
            client.api.put_archive(container, WORK, inputs_archive(workload))
            client.api.start(container)
            client.api.wait(container)
            chunks, _ = client.api.get_archive(container, f"{WORK}/out/{workload.output_name}")
            ok = workload.report_ok(archived_file(chunks))
        finally:
            client.api.remove_container(container, force=True)
    finally:
        client.api.remove_volume(volume)
    return Run(submitted, started, time.monotonic(), ok)


def new_client(concurrency: int) -> docker.DockerClient:
    """A client from the environment with a connection per thread."""
    return docker.from_env(max_pool_size=max(10, concurrency))
