"""The soak's report: final statuses, disruptions, measurements, expectations and the runs behind any NOT ok."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import common
from bench.common import verdict
from bench.soak.check import (
    IGNORED,
    SHORT_CIRCUIT,
    duplicate_completions,
    duplicate_log_successes,
    expectations,
    final_status,
    mismatches,
)
from bench.soak.plan import EXPECTED, Expectation, Observed, Plan, SoakConfig


def status_table(plan: Plan, observed: Observed) -> Table:
    """Final status counts per injected failure."""
    finals = Counter((run.failure, final_status(observed.metas.get(run.task_id))) for run in plan.runs)
    statuses = sorted({status for _, status in finals})
    table = common.table(
        "runs by final status (rows: injected failure; expected: ok / tool_failed / timed_out)", "injected"
    )
    for status in [*statuses, "total"]:
        table.add_column(status, justify="right")
    for failure in EXPECTED:
        row = [finals[(failure, status)] for status in statuses]
        table.add_row(f"{failure} (-> {EXPECTED[failure]})", *map(str, row), str(sum(row)))
    totals = [sum(finals[(f, s)] for f in EXPECTED) for s in statuses]
    table.add_row("all", *map(str, totals), str(len(plan.runs)), style="bold")
    return table


def disruption_table(plan: Plan, observed: Observed) -> Table:
    table = common.table(
        "disruptions", "#", "kind", "after terminal", "at s", "took s", "in flight", "their final statuses"
    )
    for number, event in enumerate(observed.disruptions, 1):
        finals = Counter(final_status(observed.metas.get(task_id)) for task_id in event.in_flight)
        summary = ", ".join(f"{status} {n}" for status, n in sorted(finals.items()))
        table.add_row(
            str(number), event.kind, str(event.after_terminal), f"{event.at_seconds:.0f}",
            f"{event.took_seconds:.1f}", str(len(event.in_flight)), summary,
        )  # fmt: skip
    return table


def expectation_table(plan: Plan, observed: Observed) -> Table:
    table = common.table("expectations", "expectation", "measured", "expected", "status")
    for item in expectations(plan, observed):
        table.add_row(item.what, str(item.measured), "0", verdict(item.ok, "ok"))
    return table


def seeds_table(verdicts: Sequence[tuple[int, Sequence[Expectation]]]) -> Table:
    """One row per seed of a multi-seed soak: each expectation that failed with its count, or ok."""
    table = common.table("seeds", "seed", "failed expectations", "status")
    for seed, items in verdicts:
        failed = [f"{item.what}: {item.measured}" for item in items if not item.ok]
        table.add_row(str(seed), "; ".join(failed) or "none", verdict(not failed, "ok"))
    return table


def measurement_table(config: SoakConfig, plan: Plan, observed: Observed) -> Table:
    table = common.table("measurements", "what", "value")
    for what, value in measurements(config, plan, observed):
        table.add_row(what, value)
    return table


def measurements(config: SoakConfig, plan: Plan, observed: Observed) -> list[tuple[str, str]]:
    deliveries = sorted(Counter(observed.deliveries.values()).items())
    logs, kills = observed.logs, sum(d.kind == "kill" for d in observed.disruptions)
    return [
        ("runs, tenants, concurrency, seed", f"{config.runs}, {config.tenants}, {config.concurrency}, {config.seed}"),
        ("engine", "DinD inner dockerd" if config.dind else "host engine (no daemon restart)"),
        ("wall time (first enqueue to last terminal run)", f"{observed.wall_seconds:.1f} s"),
        ("terminal runs per second", f"{_terminal(plan, observed) / max(observed.wall_seconds, 1e-9):.2f}"),
        ("worker peak RSS (process tree, max of 0.5 s samples)", f"{observed.peak_rss_bytes / 2**20:.0f} MiB"),
        ("worker incarnations (1 + SIGKILLs)", str(1 + kills)),
        ("runs by Redis delivery counter (deliveries + retries)", ", ".join(f"{k}x: {n}" for k, n in deliveries)),
        ("docker-unavailable retries (log lines)", str(logs.count("Retry in"))),
        ("deliveries returning an earlier result (log lines)", str(len(SHORT_CIRCUIT.findall(logs)))),
        ("redelivered messages ignored as already SUCCESS (log lines)", str(len(IGNORED.findall(logs)))),
        ("soak.managed volumes, containers before the sweep", ", ".join(map(str, observed.left_before_sweep))),
        ("the sweep's report", _sweep_summary(observed.sweep)),
        ("worker logs", str(observed.log_dir)),
    ]


def _terminal(plan: Plan, observed: Observed) -> int:
    return sum(not final_status(observed.metas.get(run.task_id)).startswith("lost") for run in plan.runs)


def _sweep_summary(sweep: Mapping[str, Any]) -> str:
    if "error" in sweep:
        return f"failed: {sweep['error']}"
    keys = ("removed", "removed_containers", "kept_in_use", "failed")
    return ", ".join(f"{key} {len(sweep.get(key) or [])}" for key in keys)


def print_anomalies(plan: Plan, observed: Observed, console: Console, limit: int = 10) -> None:
    """The first few runs behind each NOT ok, with the evidence."""
    for run, status in mismatches(plan, observed)[:limit]:
        meta = observed.metas.get(run.task_id) or {}
        result = meta.get("result")
        why = result.get("reason") or result.get("exc_message") if isinstance(result, dict) else result
        console.print(f"status {status!r}, expected {run.expected.value!r}: {run.run_id} task {run.task_id}: {why}")
    for task_id, n in list(duplicate_completions(observed).items())[:limit]:
        console.print(f"duplicate completion: task {task_id} published {n} distinct executions")
    for task_id, n in list(duplicate_log_successes(observed.logs).items())[:limit]:
        console.print(f"duplicate success in the logs: task {task_id} succeeded {n} times")


def report(config: SoakConfig, plan: Plan, observed: Observed, console: Console) -> None:
    console.print(status_table(plan, observed))
    console.print(disruption_table(plan, observed))
    console.print(measurement_table(config, plan, observed))
    console.print(expectation_table(plan, observed))
    print_anomalies(plan, observed, console)
