"""The throughput benchmark's tables: the machine, throughput against the targets, breakdown, CPU and the profile."""

from __future__ import annotations

import argparse
import os
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import docker
from rich.console import Console
from rich.table import Table

from bench import common
from bench.common import CallLog, percentile, usable_cpus, verdict
from bench.throughput.cpu import DOCKERD_CHILDREN, MACHINE
from bench.throughput.profile import Profile
from bench.throughput.variant import Measurement, Run, WorkerTiming, pooled

# The targets: saturated >= 0.8x the bare floor, dockerd CPU per run <= 2x the bare floor's, sequential
# p50 <= the file-moving floor's + 25 ms.
TARGET_RATIO, TARGET_DOCKERD, TARGET_P50_DELTA_MS = 0.8, 2.0, 25.0


def machine_table(client: docker.DockerClient, args: argparse.Namespace, worker: Any) -> Table:
    """Engine version, CPUs, what else runs on the engine, and where the worker logs."""
    version = client.version()
    table = common.table("machine", "what", "value")
    table.add_row("Docker Engine", f"{version.get('Version')} (API {version.get('ApiVersion')})")
    table.add_row("CPUs (usable by this process)", usable_cpus())
    table.add_row("containers running on the engine at start", str(len(client.containers.list())))
    table.add_row(
        "runs x rounds, concurrency, warm-up", f"{args.runs} x {args.rounds}, {args.concurrency}, {args.warmup}"
    )
    table.add_row("worker", f"pid {worker.process.pid}, log {worker.log}")
    return table


def _runs_cell(measurement: Measurement) -> str:
    failed = sum(not run.ok for run in measurement.runs)
    return f"{len(measurement.runs)}" + (f" ({failed} FAILED)" if failed else "")


def results_table(saturated: Mapping[str, list[Measurement]], sequential: Mapping[str, list[Measurement]]) -> Table:
    """One row per variant and round, saturated and sequential, then each variant's pooled rows."""
    table = common.table("throughput", "variant", "runs", "runs/s", "p50 ms", "p95 ms")
    for title, results in (("saturated", saturated), ("sequential", sequential)):
        if not any(results.values()):
            continue
        for label_index in range(len(results["toolrunner"])):
            for name in results:
                m = results[name][label_index]
                table.add_row(f"{title}: {name}, {m.label}", _runs_cell(m), *_numbers(m))
        for name in results:
            m = pooled(results[name])
            table.add_row(f"{title}: {name}, {m.label}", _runs_cell(m), *_numbers(m), style="bold")
        table.add_section()
    return table


def targets_table(saturated: Mapping[str, list[Measurement]], sequential: Mapping[str, list[Measurement]]) -> Table:
    """The issue's three targets, on all rounds pooled and on each round's median."""
    table = common.table("targets (pooled over all rounds; per-round median in brackets)", "target", "value", "")
    ours, bare = saturated["toolrunner"], saturated["bare floor"]
    ratio = pooled(ours).runs_per_second / pooled(bare).runs_per_second
    per_round = statistics.median(o.runs_per_second / b.runs_per_second for o, b in zip(ours, bare, strict=True))
    table.add_row(f"saturated runs/s: toolrunner / bare floor (>= {TARGET_RATIO}x)", f"{ratio:.2f}x ({per_round:.2f}x)",
                  verdict(ratio >= TARGET_RATIO))  # fmt: skip
    mine, floor = (_dockerd_ms(pooled(m)) for m in (ours, bare))
    rounds = statistics.median(_dockerd_ms(o) / _dockerd_ms(b) for o, b in zip(ours, bare, strict=True))
    table.add_row(f"dockerd CPU per run, children included: toolrunner / bare floor (<= {TARGET_DOCKERD}x)",
                  f"{mine / floor:.2f}x ({rounds:.2f}x)", verdict(mine / floor <= TARGET_DOCKERD))  # fmt: skip
    if any(sequential.values()):
        delta = pooled(sequential["toolrunner"]).latency_ms(50) - pooled(sequential["files floor"]).latency_ms(50)
        pairs = zip(sequential["toolrunner"], sequential["files floor"], strict=True)
        median = statistics.median(o.latency_ms(50) - f.latency_ms(50) for o, f in pairs)
        table.add_row(f"sequential p50: toolrunner - files floor (<= +{TARGET_P50_DELTA_MS:.0f} ms)",
                      f"{delta:+.0f} ms ({median:+.0f})", verdict(delta <= TARGET_P50_DELTA_MS))  # fmt: skip
    return table


def _dockerd_ms(m: Measurement) -> float:
    """dockerd's CPU per run, its re-executed archive children included."""
    return (m.cpu_seconds["dockerd"] + m.cpu_seconds[DOCKERD_CHILDREN]) * 1000 / len(m.runs)


def print_failures(results: Mapping[str, list[Measurement]], console: Console) -> None:
    """Say why runs failed (first three), if any did."""
    failed = [run for rounds in results.values() for m in rounds for run in m.runs if not run.ok]
    for run in failed[:3]:
        console.print(f"[red]failed run[/] {run.task_id or '(plain)'}: {run.error or 'unexpected output'}")


def _numbers(m: Measurement) -> tuple[str, str, str]:
    return f"{m.runs_per_second:.2f}", f"{m.latency_ms(50):.0f}", f"{m.latency_ms(95):.0f}"


def breakdown_table(
    results: Mapping[str, list[Measurement]], timings: Mapping[str, WorkerTiming], concurrency: int, phase: str
) -> Table:
    """Where a run's latency goes, means per run over all rounds (`phase`: saturated, or sequential with
    concurrency 1)."""
    ours, plain = pooled(results["toolrunner"]), pooled(results["bare floor"])
    table = common.table(f"breakdown (mean ms per run, {phase}, all rounds)", "measure", "toolrunner", "bare floor")

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
    every = [pooled(rounds) for rounds in results.values()]
    table = common.table("CPU ms per run (saturated, all rounds, from /proc)", "who", *results)
    for name in every[0].cpu_seconds:
        table.add_row(name, *(f"{m.cpu_seconds[name] * 1000 / len(m.runs):.0f}" for m in every))
    busy = [m.cpu_seconds[MACHINE] / (m.wall_seconds * (os.cpu_count() or 1)) for m in every]
    table.add_section()
    table.add_row("whole machine busy, share of all CPUs' time", *(f"{share:.0%}" for share in busy))
    return table


def stage_table(result: Profile) -> Table:
    """execute()'s stages: mean and p95 ms per run and share of the per-run total."""
    title = f"profile: execute() in this process, {result.runs} runs at the same concurrency"
    table = common.table(title, "stage", "mean ms", "p95 ms", "share")
    total = sum(statistics.fmean(values) for values in result.stages.values())
    for name, values in result.stages.items():
        mean = statistics.fmean(values)
        table.add_row(name, f"{mean:.0f}", f"{percentile(values, 95):.0f}", f"{mean / total:.0%}")
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
    table = common.table("profile: Docker API requests per run", *columns)
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
