"""The Celery layer: the app, the run and maintenance tasks, delivery locks, progress and metrics."""

from tasks.worker import artifacts, maintenance, metrics
from tasks.worker.app import app
from tasks.worker.artifacts import open_artifact
from tasks.worker.maintenance import sweep_all, sweep_daemon
from tasks.worker.run import TOOL_TASKS, result_for, run_tool

__all__ = [
    "TOOL_TASKS",
    "app",
    "artifacts",
    "maintenance",
    "metrics",
    "open_artifact",
    "result_for",
    "run_tool",
    "sweep_all",
    "sweep_daemon",
]
