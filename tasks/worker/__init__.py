"""The Celery layer: the app, the run and maintenance tasks, delivery locks, progress and metrics."""

from tasks.worker import (
    artifacts,  # its start-up check before audit's: a store without its key is the store's error first
    audit,
    diskguard,
    maintenance,
    metrics,
    reaper,
    safetynet,
    scoping,
    shutdown,
    webhooks,
)
from tasks.worker.app import app
from tasks.worker.artifacts import open_artifact
from tasks.worker.cancel import cancel_run, cancel_waiting_runs
from tasks.worker.maintenance import sweep_all, sweep_daemon
from tasks.worker.run import TOOL_TASKS, result_for, run_tool

__all__ = [
    "TOOL_TASKS", "app", "artifacts", "audit", "cancel_run", "cancel_waiting_runs", "diskguard", "maintenance",
    "metrics", "open_artifact", "reaper", "result_for", "run_tool", "safetynet", "scoping", "shutdown", "sweep_all",
    "sweep_daemon", "webhooks",
]  # fmt: skip
