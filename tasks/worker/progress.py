"""Progress of a running task, published where AsyncResult and Flower look: best effort, never fatal.

Publishing costs three Redis round trips (Celery's store_result reads the task's state before it writes it, then
the event for Flower) and about a millisecond of the worker's CPU; a run of a fraction of a second goes through
five stages. So a run's own brief stages are published at most once every INTERVAL: the first report of a run
goes out at once, as does every stage that can last (waiting for a slot, a host or an identical run, pulling an
image, a chunked parent's count, inputs uploaded or outputs read through the archive API), while a brief stage
reported sooner after the last publish is left out; the tool's once-a-second ticks then publish its progress
while it runs. So a run that ends within a second shows its first stage, then its result, and a running tool is
shown at most a second late. What is not shown: a cleanup that begins within INTERVAL of the last publish and
then lasts (waiting for an engine that restarts) shows as the stage before it until the run ends. Nothing is
ever published after the run's end (nothing is deferred).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import kombu.exceptions
import redis
from celery import Task

from tasks.service import Reporter, Stage

logger = logging.getLogger(__name__)

# Under the tool's tick (isolation.Watch.tick_seconds, 1 s), so that every tick of a running tool is published.
INTERVAL = 0.8
# A run's own stages that pass in a moment; any other stage may last and is always published at once.
BRIEF = frozenset({Stage.VALIDATING, Stage.RUNNING, Stage.CLEANING_UP})
# Brief only when they make no engine call: inputs carried in the create call, outputs already read from stdout
# (isolation.streamed); an upload or a read through the archive API may take a while.
BRIEF_VIA = {Stage.PREPARING_INPUTS: "create", Stage.READING_OUTPUTS: "stdout"}


def brief(stage: Stage, meta: Mapping[str, Any]) -> bool:
    """Whether a report of this stage is for a moment only (see BRIEF and BRIEF_VIA)."""
    return stage in BRIEF or (stage in BRIEF_VIA and meta.get("via") == BRIEF_VIA[stage])


class Throttle:
    """Whether a report is published: the first, every one not brief, and any once `interval` has passed since the
    last publish."""

    def __init__(self, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval, self._clock = interval, clock
        self._last: float | None = None

    def publish(self, stage: Stage, meta: Mapping[str, Any]) -> bool:
        now = self._clock()
        if brief(stage, meta) and self._last is not None and now - self._last < self._interval:
            return False
        self._last = now
        return True


def reporter(task: Task, tool: str, tenant_id: str, run_id: str) -> Reporter:
    """A Reporter that stores PROGRESS with the stage and sends a task-progress event for Flower (throttled)."""
    throttle = Throttle()

    def report(stage: Stage, meta: Mapping[str, Any]) -> None:
        if task.request.is_eager:
            return  # eager mode has no worker, no broker and nobody watching: nothing to publish
        if not throttle.publish(stage, meta):
            return
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
