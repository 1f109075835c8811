"""Celery tasks that run containerised security tools in per-tenant, per-run isolated volumes."""

from tasks.app import app
from tasks.errors import RedeliveryLimitError, TaskInputError
from tasks.maintenance import sweep_all, sweep_daemon
from tasks.run import TOOL_TASKS, run_tool

__all__ = ["TOOL_TASKS", "RedeliveryLimitError", "TaskInputError", "app", "run_tool", "sweep_all", "sweep_daemon"]
