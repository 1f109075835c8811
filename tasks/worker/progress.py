"""Progress of a running task, published where AsyncResult and Flower look: best effort, never fatal."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kombu.exceptions
import redis
from celery import Task

from tasks.service import Reporter, Stage

logger = logging.getLogger(__name__)


def reporter(task: Task, tool: str, tenant_id: str, run_id: str) -> Reporter:
    """A Reporter that stores PROGRESS with the stage and sends a task-progress event for Flower."""

    def report(stage: Stage, meta: Mapping[str, Any]) -> None:
        if task.request.is_eager:
            return  # eager mode has no worker, no broker and nobody watching: nothing to publish
        info = {"stage": stage.value, "tool": tool, "tenant_id": tenant_id, "run_id": run_id, **meta}
        try:
            task.update_state(state="PROGRESS", meta=info)
            # Flower shows a custom event's type as the task's state and keeps only its known fields, of
            # which `result` is one: carrying the progress there puts it in Flower's list and task info.
            task.send_event("task-progress", result=info)
        except (redis.RedisError, OSError, kombu.exceptions.OperationalError) as exc:
            # Progress is best effort: a Redis blip must not fail a scan that is running fine.
            logger.warning("progress not published task=%s stage=%s: %s", task.request.id, stage, exc)

    return report
