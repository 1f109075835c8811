"""The throughput benchmark's profile: tasks.service.execute in this process, each stage and API request timed."""

from __future__ import annotations

import itertools
import os
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import docker

from bench.common import BenchError, CallLog
from bench.throughput.cpu import process_seconds
from bench.throughput.variant import ThroughputBench, floor_round, new_client
from bench.throughput.workload import Workload
from config import Settings
from isolation import SeenImages
from tasks.service import RunContext, RunPlan, RunRequest, Stage, Status, execute, plan_run
from tasks.tools import load_catalogue
from tasks.worker import app

_IMAGES = SeenImages()  # as a worker keeps one: its runs take the path a worker's take (isolation.streamed)


def profiled_execute(
    client: docker.DockerClient, settings: Settings, workload: Workload, plan: RunPlan, stages: dict[str, list[float]]
) -> bool:
    """Run tasks.service.execute itself; a stage lasts from its first progress report to the next stage's."""
    network = plan.spec.network or settings.tool_network
    if network != workload.network:
        raise BenchError(f"the tool container would get network {network!r}, not the floors' {workload.network!r}")
    marks: list[tuple[str, float]] = []

    def report(stage: Stage, meta: Mapping[str, Any]) -> None:
        if not marks or marks[-1][0] != stage:  # `running` is reported again on every tick
            marks.append((stage.value, time.perf_counter()))

    ctx = RunContext(client, settings, "bench-profile", report, worker="bench", images=_IMAGES)
    result = execute(plan, ctx)
    marks.append(("done", time.perf_counter()))
    for (stage, began), (_, ended) in itertools.pairwise(marks):
        stages[stage].append((ended - began) * 1000)
    return result.status is Status.OK and workload.findings_ok(result.findings)


@dataclass
class Profile:
    """Stage timings of execute() in this process, its API requests and the plain loop's, and their wall times."""

    runs: int
    stages: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    copy_calls: CallLog = field(default_factory=CallLog)
    plain_calls: CallLog = field(default_factory=CallLog)
    copy_seconds: float = 0.0
    plain_seconds: float = 0.0
    copy_cpu_seconds: float = 0.0
    plain_cpu_seconds: float = 0.0
    copy_failures: int = 0


def profile(bench: ThroughputBench, runs: int) -> Profile:
    """Run execute() in this process, then the bare floor, `runs` times each at the benchmark's concurrency,
    every request timed."""
    result = Profile(runs)
    settings = app.settings
    catalogue = load_catalogue(settings.extra_tool_modules)
    plans = [
        plan_run(catalogue, RunRequest(bench.workload.tool, bench.tenants[i % len(bench.tenants)], f"profile-{i}",
                                       dict(bench.workload.params)),
                 max_input_bytes=settings.max_input_bytes, max_timeout_seconds=settings.max_timeout_seconds)
        for i in range(runs)
    ]  # fmt: skip
    client = new_client(bench.concurrency)
    result.copy_calls.attach(client)
    with ThreadPoolExecutor(bench.concurrency) as pool, phase() as copy:
        run = partial(profiled_execute, client, settings, bench.workload, stages=result.stages)
        oks = list(pool.map(run, plans))
    result.copy_seconds, result.copy_cpu_seconds, result.copy_failures = *copy, oks.count(False)
    plain_client = new_client(bench.concurrency)
    result.plain_calls.attach(plain_client)
    with phase() as plain:
        floor = ThroughputBench(plain_client, bench.concurrency, [], bench.nonce, bench.workload)
        floor_round(floor, runs, "profile", files=False)
    result.plain_seconds, result.plain_cpu_seconds = plain
    return result


@contextmanager
def phase() -> Iterator[list[float]]:
    """Yield a list that, on exit, holds [wall seconds, CPU seconds of this process] of the block."""
    spent: list[float] = []
    wall, cpu = time.perf_counter(), process_seconds(os.getpid())
    yield spent
    spent += [time.perf_counter() - wall, process_seconds(os.getpid()) - cpu]
