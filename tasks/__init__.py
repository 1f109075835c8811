"""Celery tasks that run containerised security tools in per-tenant, per-run isolated volumes.

Layers, each importing only those below it: `tasks.tools` (pure tool specs and parsers) <-
`tasks.service` (request, plan, runner, result; no Celery) <- `tasks.worker` (the Celery app and tasks)
and `tasks.cli`. The Celery names below load lazily, so importing the catalogue or the service never
builds the Celery app; `celery -A tasks worker` and `from tasks import run_tool` work as before.
"""

from __future__ import annotations

import importlib
from typing import Any

from tasks.errors import (
    RedeliveryLimitError,
    RunLockTimeoutError,
    TaskIdentityError,
    TaskInputError,
    ToolrunnerError,
)

_WORKER_NAMES = {
    "app", "cancel_run", "cancel_waiting_runs", "open_artifact", "result_for", "run_tool", "TOOL_TASKS", "sweep_all",
    "sweep_daemon",
}  # fmt: skip

__all__ = [
    "TOOL_TASKS",
    "RedeliveryLimitError",
    "RunLockTimeoutError",
    "TaskIdentityError",
    "TaskInputError",
    "ToolrunnerError",
    "app",
    "cancel_run",
    "cancel_waiting_runs",
    "open_artifact",
    "result_for",
    "run_tool",
    "sweep_all",
    "sweep_daemon",
]


def __getattr__(name: str) -> Any:
    """Load the Celery layer on first use of one of its names."""
    if name in _WORKER_NAMES:
        return getattr(importlib.import_module("tasks.worker"), name)
    raise AttributeError(f"module 'tasks' has no attribute {name!r}")
