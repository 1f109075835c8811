"""The Celery layer: the app, the run and maintenance tasks, delivery locks, progress and metrics."""

from tasks.worker import maintenance, metrics, safetynet
from tasks.worker.app import app
from tasks.worker.maintenance import sweep_all, sweep_daemon
from tasks.worker.run import TOOL_TASKS, result_for, run_tool

__all__ = [
    "TOOL_TASKS",
    "app",
    "maintenance",
    "metrics",
    "result_for",
    "run_tool",
    "safetynet",
    "sweep_all",
    "sweep_daemon",
]
