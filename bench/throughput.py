"""Throughput benchmark: runs through a real Celery worker vs a plain docker SDK loop at the same concurrency.

Run:  .venv/bin/python bench/throughput.py [--runs 100] [--concurrency 4] [--rounds 2] [--warmup 8]
                                           [--tenants 4] [--profile-runs 40]

Needs the Docker Engine, Redis on 127.0.0.1:6379 (db 14 is flushed, then used by the worker alone) and the image
toolrunner-busybox:local (scripts/build-images). Nothing is asserted: the tables show the numbers and each target.

Variants, each handed all `--runs` runs at once:
  toolrunner  a real `celery -A tasks worker --pool prefork --concurrency N` subprocess (TOOLRUNNER_TOOL_NETWORK=none,
              the test-only `script` tool enabled) gets `run_tool.delay("script", tenant, run, {"script":
              "echo ok > /outputs/out.txt"})` per run, tenants taken round-robin from `--tenants`; each run creates
              two volumes, runs the tool container, reads out.txt back, removes everything and stores its result.
  plain       a ThreadPoolExecutor(N) doing `containers.run(busybox, ["sh", "-c", "echo ok"], network_mode="none",
              detach=True)`, wait, logs, remove: no volumes, no hardening, no queue.
Both warm up with `--warmup` runs first (not counted). The variants alternate over `--rounds` rounds (default 2),
the order flipping each round (toolrunner then plain, then plain then toolrunner), so drift on a shared machine hits
both alike. The worker runs from before the first round to after the last.

Numbers:
  runs/s       runs / wall time from the first submission (enqueue, or pool submit) to the last result seen.
  p50/p95 ms   per-run latency from its submission to its result. With every run submitted at once this is
               mostly waiting for a free slot, so it grows with runs / throughput: a small throughput gap
               becomes a large p50 gap.
  ratios       from all rounds pooled (runs / summed wall times; latencies pooled): toolrunner runs/s divided by
               plain runs/s (target >= 0.8) and toolrunner p50 minus plain p50 (target <= +250 ms).
  breakdown    means per run: submission -> started (queue and slot wait), started -> result (service time),
               slot time = concurrency / runs/s. toolrunner's "started" is when its result key first appears
               (STARTED state). From the worker log: received -> running in a child, task runtime ("succeeded
               in"), of which execute() (the result's stats.duration_ms), and the slot time no task ran in
               (ack, result, fetching and dispatching the next message).
  CPU          CPU ms per run during the rounds, from /proc: the whole machine (other people's load included),
               the worker's main process and pool children, dockerd, containerd, this process; and how busy
               the machine's CPUs were. Near 100% busy, every extra CPU ms per run costs throughput.
  profile      `--profile-runs` runs of tasks.runner.execute in this process (the same isolation calls in
               the same order, no Celery) at the same concurrency with every stage timed, and every Docker API
               request timed by endpoint next to the plain loop's. Requests overlap under concurrency, so their
               milliseconds add up to more than the wall time.
Results are polled client-side: one Redis MGET over all pending result keys every 10 ms, time.monotonic() stamps.
At the end it prints how many volumes and containers labelled `studio.managed=true` this benchmark's tenants left
(and removes them and any plain-loop container).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import redis
from rich.console import Console
from rich.table import Table

import isolation
from config import Settings
from tasks import app, run_tool
from tasks.request import RunPlan, plan_run
from tasks.runner import RunContext, execute
from tasks.tools import load_catalogue

ROOT = Path(__file__).resolve().parents[1]
BROKER = "redis://127.0.0.1:6379/14"
IMAGE = "toolrunner-busybox:local"
SCRIPT_MODULE = "tests.tooldefs.script"
PARAMS = {"script": "echo ok > /outputs/out.txt", "outputs": ["out.txt"]}
EXPECTED_FINDINGS = [{"file": "out.txt", "line": "ok"}]
PLAIN_LABEL = "toolrunner.bench"  # the plain loop's containers are not the project's: a label of their own
POLL_SECONDS = 0.01
RESULT_TIMEOUT_SECONDS = 600.0
TARGET_RATIO, TARGET_P50_DELTA_MS = 0.8, 250.0
READY_STATES = (b'"SUCCESS"', b'"FAILURE"', b'"REVOKED"')
TASK_LINE = re.compile(
    r"^\[(?P<at>[\d-]+ [\d:]+,\d{3}): INFO/\S+\] Task toolrunner\.run_tool\[(?P<id>[0-9a-f-]+)\] "
    r"(?:received|succeeded in (?P<seconds>[0-9.e-]+)s)",
    re.MULTILINE,
)


class BenchError(RuntimeError):
    """Raised when the benchmark cannot measure (results never arrive, a network other than none)."""


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
        return _percentile([(r.done - r.submitted) * 1000 for r in self.runs], percent)

    def mean_ms(self, start: Callable[[Run], float], end: Callable[[Run], float]) -> float:
        return statistics.fmean((end(r) - start(r)) * 1000 for r in self.runs)


@dataclass
class CallLog:
    """Every Docker API request a client sends: (endpoint, milliseconds)."""

    calls: list[tuple[str, float]] = field(default_factory=list)

    def attach(self, client: docker.DockerClient) -> None:
        """Time every HTTP request of client (the instance attribute shadows Session.send)."""
        send = client.api.send

        def timed_send(request: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return send(request, **kwargs)
            finally:
                self.calls.append((_endpoint(request.method, request.url), (time.perf_counter() - start) * 1000))

        client.api.send = timed_send


@dataclass(frozen=True)
class Bench:
    """What every phase needs: the client, the concurrency, this benchmark's tenants and nonce."""

    client: docker.DockerClient
    concurrency: int
    tenants: list[str]
    nonce: str
    worker_pid: int = 0


def _percentile(values: Sequence[float], percent: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1] if len(values) > 1 else values[0]


def _endpoint(method: str, url: str) -> str:
    """`POST /containers/{id}/wait` from a full engine URL: version prefix, ids and query dropped."""
    parts = re.sub(r"^/v\d+\.\d+", "", urlsplit(url).path).split("/")
    if len(parts) > 2 and parts[1] in ("containers", "volumes", "images") and parts[2] not in ("create", "json"):
        parts[2] = "{id}"
    return f"{method} {'/'.join(parts)}"


def pooled(measurements: Sequence[Measurement]) -> Measurement:
    """All rounds of one variant as one measurement: runs concatenated, wall times summed."""
    runs = [run for m in measurements for run in m.runs]
    cpu = {name: sum(m.cpu_seconds.get(name, 0.0) for m in measurements) for name in measurements[0].cpu_seconds}
    return Measurement(measurements[0].variant, "all rounds", runs, sum(m.wall_seconds for m in measurements), cpu)


# --- the worker and the toolrunner variant ----------------------------------------------------------------------


def configure_environment() -> dict[str, str]:
    """Point this process (whose app reads settings on first use) and the worker at db 14; return that env."""
    env = {
        "TOOLRUNNER_BROKER_URL": BROKER,
        "TOOLRUNNER_RESULT_BACKEND": BROKER,
        "TOOLRUNNER_TOOL_NETWORK": "none",
        "TOOLRUNNER_EXTRA_TOOL_MODULES": json.dumps([SCRIPT_MODULE]),
    }
    os.environ.update(env)
    if "settings" in app.__dict__:
        raise BenchError("the Celery app read its settings before the benchmark configured them")
    redis.Redis.from_url(BROKER).flushdb()
    return env


def start_bench_worker(log_dir: Path, concurrency: int, env: Mapping[str, str]) -> Any:
    """Start a prefork worker with the integration tests' helper and wait for its ping."""
    sys.path.insert(0, str(ROOT))  # tests/ is not an installed package
    from tests.integration.workers import start_worker

    name = f"bench-throughput-{secrets.token_hex(3)}"
    return start_worker(log_dir, name, concurrency=concurrency, env=dict(env))


def toolrunner_round(bench: Bench, runs: int, label: str) -> Measurement:
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
    ok = result.get("status") == "ok" and result.get("findings") == EXPECTED_FINDINGS
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


# --- the plain loop -----------------------------------------------------------------------------------------------


def plain_round(bench: Bench, runs: int, label: str) -> Measurement:
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
        IMAGE, ["sh", "-c", "echo ok"], network_mode="none", detach=True, labels=dict(labels)
    )
    try:
        container.wait()
        ok = container.logs() == b"ok\n"
    finally:
        container.remove(force=True)
    return Run(submitted, started, time.monotonic(), ok)


# --- the profile: tasks.runner.execute in this process, each stage timed from its progress reports -------------


def profiled_execute(
    client: docker.DockerClient, settings: Settings, plan: RunPlan, stages: dict[str, list[float]]
) -> bool:
    """Run tasks.runner.execute itself; a stage lasts from its first progress report to the next stage's."""
    network = plan.spec.network or settings.tool_network
    if network != "none":
        raise BenchError(f"the tool container would get network {network!r}; this benchmark only uses none")
    marks: list[tuple[str, float]] = []

    def report(stage: str, meta: Mapping[str, Any]) -> None:
        if not marks or marks[-1][0] != stage:  # `running` is reported again on every tick
            marks.append((stage, time.perf_counter()))

    result = execute(plan, RunContext(client, settings, "bench-profile", report, "bench"))
    marks.append(("done", time.perf_counter()))
    for (stage, began), (_, ended) in itertools.pairwise(marks):
        stages[stage].append((ended - began) * 1000)
    return bool(result["status"] == "ok" and result["findings"] == EXPECTED_FINDINGS)


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


def profile(bench: Bench, runs: int) -> Profile:
    """Run execute() in this process, then the plain loop, `runs` times each at the benchmark's concurrency,
    every request timed."""
    result = Profile(runs)
    settings = app.settings
    catalogue = load_catalogue(settings.extra_tool_modules)
    plans = [
        plan_run(catalogue, "script", bench.tenants[i % len(bench.tenants)], f"profile-{i}", PARAMS, None,
                 max_input_bytes=settings.max_input_bytes, max_timeout_seconds=settings.max_timeout_seconds)
        for i in range(runs)
    ]  # fmt: skip
    client = new_client(bench.concurrency)
    result.copy_calls.attach(client)
    with ThreadPoolExecutor(bench.concurrency) as pool, phase() as copy:
        oks = list(pool.map(partial(profiled_execute, client, settings, stages=result.stages), plans))
    result.copy_seconds, result.copy_cpu_seconds, result.copy_failures = *copy, oks.count(False)
    plain_client = new_client(bench.concurrency)
    result.plain_calls.attach(plain_client)
    with phase() as plain:
        plain_round(Bench(plain_client, bench.concurrency, [], bench.nonce), runs, "profile")
    result.plain_seconds, result.plain_cpu_seconds = plain
    return result


@contextmanager
def phase() -> Iterator[list[float]]:
    """Yield a list that, on exit, holds [wall seconds, CPU seconds of this process] of the block."""
    spent: list[float] = []
    wall, cpu = time.perf_counter(), _process_seconds(os.getpid())
    yield spent
    spent += [time.perf_counter() - wall, _process_seconds(os.getpid()) - cpu]


def new_client(concurrency: int) -> docker.DockerClient:
    """A client from the environment with a connection per thread."""
    return docker.from_env(max_pool_size=max(10, concurrency))


# --- CPU accounting from /proc: who burns the machine's CPUs during a round ----------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")
MACHINE = "whole machine (all CPUs, everyone's load)"


def _process_seconds(pid: int) -> float:
    """utime + stime of one process; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def _processes() -> list[tuple[int, int, str]]:
    """(pid, ppid, command name) of every process."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                head, tail = (entry / "stat").read_text().rsplit(")", 1)
            except OSError:
                continue
            found.append((int(entry.name), int(tail.split()[1]), head.split("(", 1)[1]))
    return found


def _busy_seconds() -> float:
    """CPU seconds the whole machine spent neither idle nor waiting for I/O (summed over all CPUs)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS  # user nice system [idle iowait] irq softirq


def cpu_snapshot(worker_pid: int) -> dict[str, float]:
    """Cumulative CPU seconds: whole machine, worker main process, its pool children, dockerd, containerd, us."""
    processes = _processes()
    children = [pid for pid, ppid, _ in processes if ppid == worker_pid]
    named = {name: [pid for pid, _, comm in processes if comm == name] for name in ("dockerd", "containerd")}
    return {
        MACHINE: _busy_seconds(),
        "celery worker main process": _process_seconds(worker_pid),
        "celery worker pool children": sum(map(_process_seconds, children)),
        "dockerd": sum(map(_process_seconds, named["dockerd"])),
        "containerd": sum(map(_process_seconds, named["containerd"])),
        "this benchmark process": _process_seconds(os.getpid()),
    }


def with_cpu(bench: Bench, variant: Callable[[], Measurement]) -> Measurement:
    """Run one round and attach the CPU seconds each group spent during it."""
    before = cpu_snapshot(bench.worker_pid)
    measurement = variant()
    after = cpu_snapshot(bench.worker_pid)
    return replace(measurement, cpu_seconds={name: after[name] - before[name] for name in before})


# --- tables ---------------------------------------------------------------------------------------------------------


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    return table


def machine_table(client: docker.DockerClient, args: argparse.Namespace, worker: Any) -> Table:
    """Engine version, CPUs, what else runs on the engine, and where the worker logs."""
    version = client.version()
    table = _table("machine", "what", "value")
    table.add_row("Docker Engine", f"{version.get('Version')} (API {version.get('ApiVersion')})")
    table.add_row("CPUs (usable by this process)", f"{os.cpu_count()} ({len(os.sched_getaffinity(0))})")
    table.add_row("containers running on the engine at start", str(len(client.containers.list())))
    table.add_row(
        "runs x rounds, concurrency, warm-up", f"{args.runs} x {args.rounds}, {args.concurrency}, {args.warmup}"
    )
    table.add_row("worker", f"pid {worker.process.pid}, log {worker.log}")
    return table


def _runs_cell(measurement: Measurement) -> str:
    failed = sum(not run.ok for run in measurement.runs)
    return f"{len(measurement.runs)}" + (f" ({failed} FAILED)" if failed else "")


def _met(ok: bool) -> str:
    return "[green]met[/]" if ok else "[red]NOT met[/]"


def results_table(results: Mapping[str, list[Measurement]]) -> Table:
    """One row per variant and round, the pooled rows, then the two targets."""
    table = _table("throughput", "variant", "runs", "runs/s", "p50 ms", "p95 ms")
    for label_index in range(len(results["toolrunner"])):
        for name in results:
            m = results[name][label_index]
            table.add_row(f"{name}, {m.label}", _runs_cell(m), *_numbers(m))
    table.add_section()
    ours, plain = pooled(results["toolrunner"]), pooled(results["plain"])
    for m in (ours, plain):
        table.add_row(f"{m.variant}, {m.label}", _runs_cell(m), *_numbers(m), style="bold")
    table.add_section()
    ratio = ours.runs_per_second / plain.runs_per_second
    delta = ours.latency_ms(50) - plain.latency_ms(50)
    table.add_row(f"toolrunner / plain throughput (target >= {TARGET_RATIO}x)", "", f"{ratio:.2f}x", "", "")
    table.add_row("", "", _met(ratio >= TARGET_RATIO), "", "")
    table.add_row(f"toolrunner p50 - plain p50 (target <= +{TARGET_P50_DELTA_MS:.0f} ms)", "", "", f"{delta:+.0f}", "")
    table.add_row("", "", "", _met(delta <= TARGET_P50_DELTA_MS), "")
    return table


def print_failures(results: Mapping[str, list[Measurement]], console: Console) -> None:
    """Say why runs failed (first three), if any did."""
    failed = [run for rounds in results.values() for m in rounds for run in m.runs if not run.ok]
    for run in failed[:3]:
        console.print(f"[red]failed run[/] {run.task_id or '(plain)'}: {run.error or 'unexpected output'}")


def _numbers(m: Measurement) -> tuple[str, str, str]:
    return f"{m.runs_per_second:.2f}", f"{m.latency_ms(50):.0f}", f"{m.latency_ms(95):.0f}"


def breakdown_table(
    results: Mapping[str, list[Measurement]], timings: Mapping[str, WorkerTiming], concurrency: int
) -> Table:
    """Where a run's latency goes, means per run over all rounds."""
    ours, plain = pooled(results["toolrunner"]), pooled(results["plain"])
    table = _table("breakdown (mean ms per run, all rounds)", "measure", "toolrunner", "plain")

    def row(what: str, start: Callable[[Run], float], end: Callable[[Run], float]) -> None:
        table.add_row(what, f"{ours.mean_ms(start, end):.0f}", f"{plain.mean_ms(start, end):.0f}")

    row("submitted -> started (queue and slot wait)", lambda r: r.submitted, lambda r: r.started)
    row("started -> result (service time)", lambda r: r.started, lambda r: r.done)
    slot = [f"{concurrency / m.runs_per_second * 1000:.0f}" for m in (ours, plain)]
    table.add_row("slot time per run = concurrency / runs/s", *slot)
    worker = [timings[r.task_id] for r in ours.runs if r.task_id in timings]
    runtime = statistics.fmean(t.runtime_ms for t in worker) if worker else float("nan")
    table.add_row("worker: received -> running in a pool child (log)", _ms(t.dispatch_ms for t in worker), "")
    table.add_row("worker: task runtime in the pool child (log)", f"{runtime:.0f}", "")
    executes = [r.execute_ms for r in ours.runs if r.execute_ms is not None]
    table.add_row("  of which execute() (result stats.duration_ms)", _ms(executes), "")
    idle = concurrency / ours.runs_per_second * 1000 - runtime
    table.add_row("worker: slot not running a task (slot time - runtime)", f"{idle:.0f}", "")
    return table


def _ms(values: Iterable[float]) -> str:
    items = list(values)
    return f"{statistics.fmean(items):.0f}" if items else "?"


def cpu_table(results: Mapping[str, list[Measurement]]) -> Table:
    """CPU milliseconds per run by process group, all rounds; the machine row includes everyone else's load."""
    ours, plain = pooled(results["toolrunner"]), pooled(results["plain"])
    table = _table("CPU ms per run (all rounds, from /proc)", "who", "toolrunner", "plain")
    for name in ours.cpu_seconds:
        cells = [f"{m.cpu_seconds[name] * 1000 / len(m.runs):.0f}" for m in (ours, plain)]
        table.add_row(name, *cells)
    busy = [m.cpu_seconds[MACHINE] / (m.wall_seconds * (os.cpu_count() or 1)) for m in (ours, plain)]
    table.add_section()
    table.add_row("whole machine busy, share of all CPUs' time", *(f"{share:.0%}" for share in busy))
    return table


def stage_table(result: Profile) -> Table:
    """execute()'s stages: mean and p95 ms per run and share of the per-run total."""
    title = f"profile: execute() in this process, {result.runs} runs at the same concurrency"
    table = _table(title, "stage", "mean ms", "p95 ms", "share")
    total = sum(statistics.fmean(values) for values in result.stages.values())
    for name, values in result.stages.items():
        mean = statistics.fmean(values)
        table.add_row(name, f"{mean:.0f}", f"{_percentile(values, 95):.0f}", f"{mean / total:.0%}")
    table.add_section()
    table.add_row("per-run total", f"{total:.0f}", "", "")
    table.add_row("in-process runs/s (wall)", f"{result.runs / result.copy_seconds:.2f}", "", "")
    table.add_row("plain loop runs/s (wall, same phase)", f"{result.runs / result.plain_seconds:.2f}", "", "")
    in_process_cpu = f"{result.copy_cpu_seconds * 1000 / result.runs:.0f}"
    table.add_row("in-process: CPU ms per run of this process", in_process_cpu, "", "")
    table.add_row(
        "plain: CPU ms per run of this process", f"{result.plain_cpu_seconds * 1000 / result.runs:.0f}", "", ""
    )
    if result.copy_failures:
        table.add_row("[red]in-process runs that did not read back 'ok'[/]", str(result.copy_failures), "", "")
    return table


def endpoint_table(result: Profile) -> Table:
    """Docker API requests per run and their summed milliseconds, in-process vs plain, slowest first."""
    copy, plain = _per_endpoint(result.copy_calls, result.runs), _per_endpoint(result.plain_calls, result.runs)
    none = Requests(0.0, 0.0)
    columns = ("endpoint", "in-process n", "in-process ms", "plain n", "plain ms")
    table = _table("profile: Docker API requests per run", *columns)
    for name in sorted(copy.keys() | plain.keys(), key=lambda n: -copy.get(n, none).ms):
        table.add_row(name, *copy.get(name, none).cells(), *plain.get(name, none).cells())
    table.add_section()
    table.add_row("total", *_total(copy.values()).cells(), *_total(plain.values()).cells())
    return table


@dataclass(frozen=True)
class Requests:
    """Requests to one endpoint per run: how many, and their summed milliseconds."""

    count: float
    ms: float

    def cells(self) -> tuple[str, str]:
        return (f"{self.count:.0f}", f"{self.ms:.1f}") if self.count else ("", "")


def _per_endpoint(log: CallLog, runs: int) -> dict[str, Requests]:
    grouped: dict[str, list[float]] = defaultdict(list)
    for name, ms in log.calls:
        grouped[name].append(ms)
    return {name: Requests(len(values) / runs, sum(values) / runs) for name, values in grouped.items()}


def _total(requests: Iterable[Requests]) -> Requests:
    items = list(requests)
    return Requests(sum(r.count for r in items), sum(r.ms for r in items))


# --- leftovers -----------------------------------------------------------------------------------------------------


def leftovers(bench: Bench, console: Console) -> None:
    """Print what this benchmark's tenants left labelled managed, then remove it and the plain-loop containers."""
    prefix = app.settings.label_prefix
    volumes = containers = 0
    for tenant in bench.tenants:
        filters = {"label": [f"{prefix}.managed=true", f"{prefix}.tenant={tenant}"]}
        volumes += len(bench.client.volumes.list(filters=filters))
        containers += len(bench.client.containers.list(all=True, filters=filters))
        isolation.remove_labelled({"tenant": tenant}, bench.client, label_prefix=prefix)
    plain = bench.client.containers.list(all=True, filters={"label": f"{PLAIN_LABEL}={bench.nonce}"})
    for container in plain:
        container.remove(force=True)
    every = len(bench.client.volumes.list(filters={"label": f"{prefix}.managed=true"}))
    console.print(
        f"left behind, labelled {prefix}.managed=true by this benchmark's tenants: {volumes} volumes, "
        f"{containers} containers; plain-loop containers removed: {len(plain)} "
        f"(managed volumes on the whole shared engine now: {every})"
    )


# --- main ----------------------------------------------------------------------------------------------------------

Variant = Callable[[Bench, int, str], Measurement]


def measure(bench: Bench, args: argparse.Namespace, console: Console) -> dict[str, list[Measurement]]:
    """Warm both variants up, then alternate them for `rounds` rounds, flipping the order each round."""
    variants: dict[str, Variant] = {"toolrunner": toolrunner_round, "plain": plain_round}
    for variant in variants.values():
        if args.warmup:
            variant(bench, args.warmup, "warm")
    results: dict[str, list[Measurement]] = {name: [] for name in variants}
    for number in range(1, args.rounds + 1):
        for name in list(variants) if number % 2 else list(reversed(variants)):
            measurement = with_cpu(bench, partial(variants[name], bench, args.runs, f"round {number}"))
            results[name].append(measurement)
            console.log(f"round {number} {name}: {measurement.runs_per_second:.2f} runs/s")
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=100, help="runs per variant per round")
    parser.add_argument("--concurrency", type=int, default=4, help="worker --concurrency and plain pool size")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, the variant order flipping each round")
    parser.add_argument("--warmup", type=int, default=8, help="uncounted runs per variant before the rounds")
    parser.add_argument("--tenants", type=int, default=4, help="tenants the toolrunner runs are spread over")
    parser.add_argument("--profile-runs", type=int, default=40, help="runs of the stage profile; 0 skips it")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    console = Console() if sys.stdout.isatty() else Console(width=140)  # piped: wide enough for every table
    env = configure_environment()
    nonce = secrets.token_hex(3)
    tenants = [f"bench-{nonce}-t{i}" for i in range(args.tenants)]
    bench = Bench(new_client(args.concurrency), args.concurrency, tenants, nonce)
    try:
        worker = start_bench_worker(Path(tempfile.mkdtemp(prefix="bench-throughput-")), args.concurrency, env)
        bench = replace(bench, worker_pid=worker.process.pid)
        console.print(machine_table(bench.client, args, worker))
        try:
            results = measure(bench, args, console)
        finally:
            worker.stop()  # SIGTERM to its pid, then wait
        console.print(results_table(results))
        print_failures(results, console)
        console.print(breakdown_table(results, worker_timings(worker.log), args.concurrency))
        console.print(cpu_table(results))
        if args.profile_runs:
            result = profile(bench, args.profile_runs)
            console.print(stage_table(result))
            console.print(endpoint_table(result))
    finally:
        leftovers(bench, console)


if __name__ == "__main__":
    main()
