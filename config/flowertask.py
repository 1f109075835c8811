"""How Flower's task pages show a run's progress: its stage and numbers as one line in the Result column.

A `task-progress` event's `result` is the progress dict (tasks/worker/progress.py); Flower's list would print it
as "[object Object]". Flower calls `format_task` on a copy of each task it renders on /tasks and /task/<id> (its
REST API is left as it is: there `result` stays the dict).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_SHOWN_ELSEWHERE = ("stage", "tool", "tenant_id", "run_id")  # the stage leads; the rest are the run's own ids


def stage_line(progress: Mapping[str, Any]) -> str:
    """`running: elapsed_seconds=12.0 output_lines=40`, `waiting_for_slot: ahead=1`, or the bare stage."""
    details = " ".join(f"{key}={value}" for key, value in progress.items() if key not in _SHOWN_ELSEWHERE)
    return f"{progress['stage']}: {details}" if details else str(progress["stage"])


def format_task(task: Any) -> Any:
    """Flower's `format_task` hook: a task whose result is a progress report shows its stage line instead."""
    result = getattr(task, "result", None)
    if isinstance(result, Mapping) and "stage" in result:
        task.result = stage_line(result)
    return task
