"""The soak's checks (pure): final statuses, whose marker a result carries, duplicates, and the expectations."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from bench.soak.plan import Expectation, Observed, Plan, PlannedRun

SUCCEEDED = re.compile(r"Task toolrunner\.run_tool\[(?P<id>[0-9a-f-]+)\] succeeded in")
SHORT_CIRCUIT = re.compile(r"task=(?P<id>[0-9a-f-]+) already succeeded in another delivery")
IGNORED = re.compile(r"Task toolrunner\.run_tool\[(?P<id>[0-9a-f-]+)\] ignored")


def final_status(meta: Mapping[str, Any] | None) -> str:
    """The run's final status: the result's status, FAILURE with the exception type, or lost (and its state)."""
    state = (meta or {}).get("status", "PENDING")
    result = (meta or {}).get("result")
    if state == "SUCCESS" and isinstance(result, dict):
        return str(result.get("status"))
    if state == "FAILURE":
        return f"FAILURE {result.get('exc_type') if isinstance(result, dict) else result}"
    return f"lost ({state})"


def lines_of(result: Mapping[str, Any]) -> list[str]:
    return [str(f.get("line")) for f in result.get("findings") or [] if f.get("file") == "out.txt"]


def read_class(run: PlannedRun, result: Mapping[str, Any], owners: Mapping[str, PlannedRun]) -> str:
    """own, cross-tenant, cross-run or unmarked: whose marker this run's result carries."""
    if (result.get("tenant_id"), result.get("run_id")) != (run.tenant, run.run_id):
        return "cross-tenant" if result.get("tenant_id") != run.tenant else "cross-run"
    found = [owners[line] for line in lines_of(result) if line in owners]
    if any(other.tenant != run.tenant for other in found):
        return "cross-tenant"
    if any(other.run_id != run.run_id for other in found):
        return "cross-run"
    return "own" if found else "unmarked"


def read_classes(plan: Plan, observed: Observed) -> Counter[str]:
    owners = {run.marker: run for run in plan.runs}
    classes: Counter[str] = Counter()
    for run in plan.runs:
        meta = observed.metas.get(run.task_id) or {}
        if meta.get("status") == "SUCCESS" and isinstance(meta.get("result"), dict):
            classes[read_class(run, meta["result"], owners)] += 1
    return classes


def duplicate_completions(observed: Observed) -> dict[str, int]:
    """Task ids whose published SUCCESS results carry more than one execution id, and how many."""
    executions = {
        task_id: {tuple(lines_of(r)[1:2]) for r in results} for task_id, results in observed.published.items()
    }
    return {task_id: len(ids) for task_id, ids in executions.items() if len(ids) > 1}


def duplicate_log_successes(logs: str) -> dict[str, int]:
    """Task ids with more `succeeded` log lines than deliveries that returned an earlier delivery's result + 1."""
    succeeded = Counter(m["id"] for m in SUCCEEDED.finditer(logs))
    reused = Counter(m["id"] for m in SHORT_CIRCUIT.finditer(logs))
    return {task_id: n - reused[task_id] for task_id, n in succeeded.items() if n - reused[task_id] > 1}


def mismatches(plan: Plan, observed: Observed) -> list[tuple[PlannedRun, str]]:
    """Runs whose final status is not the one their injected failure predicts."""
    finals = ((run, final_status(observed.metas.get(run.task_id))) for run in plan.runs)
    return [(run, status) for run, status in finals if status != run.expected]


def lost(plan: Plan, observed: Observed) -> list[PlannedRun]:
    return [run for run in plan.runs if final_status(observed.metas.get(run.task_id)).startswith("lost")]


def expectations(plan: Plan, observed: Observed) -> list[Expectation]:
    """Every expectation of the soak with its measured value."""
    reads = read_classes(plan, observed)
    rows = [
        ("runs lost (no terminal state)", len(lost(plan, observed))),
        ("duplicate completions (published results, distinct executions)", len(duplicate_completions(observed))),
        ("duplicate completions (succeeded log lines per task)", len(duplicate_log_successes(observed.logs))),
        ("cross-tenant reads", reads["cross-tenant"]),
        ("results carrying another run's marker, or none", reads["cross-run"] + reads["unmarked"]),
        ("runs whose status is not the one expected for its injection", len(mismatches(plan, observed))),
        ("soak.managed volumes left after the sweep", observed.left_after_sweep[0]),
        ("soak.managed containers left after the sweep", observed.left_after_sweep[1]),
    ]
    return [Expectation(what, value, value == 0) for what, value in rows]
