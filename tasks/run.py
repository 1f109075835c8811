"""The run tasks: `toolrunner.run_tool` and one `toolrunner.tools.<tool>` per catalogue tool."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import kombu.exceptions
import redis
from celery import Task

import isolation
from tasks.app import app, release_lock
from tasks.errors import RedeliveryLimitError
from tasks.metrics import metrics
from tasks.request import RunPlan, plan_run
from tasks.runner import Reporter, RunContext, execute
from tasks.tools import load_catalogue

logger = logging.getLogger(__name__)

DELIVERY_KEY = "toolrunner:deliveries:{}"
RUNNING_KEY = "toolrunner:running:{}"
RUN_LOCK_TTL = 20


@app.task(bind=True, name="toolrunner.run_tool")
def run_tool(
    self: Task,
    tool: str,
    tenant_id: str,
    run_id: str,
    params: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one tool for a tenant's run and return its parsed findings."""
    return run_request(self, tool, tenant_id, run_id, params, files)


def run_request(task: Task, tool: str, tenant_id: str, run_id: str, params: object, files: object) -> dict[str, Any]:
    """Validate, run and shape the result; bad input fails at once, an unreachable engine is retried."""
    settings = app.settings
    reporter = _reporter(task, tool, tenant_id, run_id)
    reporter("validating", {})
    plan = plan_run(
        app.catalogue, tool, tenant_id, run_id, params, files,
        max_input_bytes=settings.max_input_bytes, max_timeout_seconds=settings.max_timeout_seconds,
    )  # fmt: skip
    with _only_copy_running(task):
        done = _stored_success(task)
        if done is not None:
            logger.info("task=%s already succeeded in another delivery; returning its result", task.request.id)
            return done
        return _run_or_retry(task, plan, reporter)


def _run_or_retry(task: Task, plan: RunPlan, reporter: Reporter) -> dict[str, Any]:
    """Run the plan; when the engine is unreachable, retry with backoff a bounded number of times."""
    settings = app.settings
    client = app.docker_client
    earlier_attempt = _count_delivery(task) > 1 or bool(task.request.retries)
    try:
        if earlier_attempt:
            # An earlier delivery's worker died mid-run, or an earlier try lost the engine: remove what
            # it left before running again.
            report = isolation.remove_labelled({"task": task.request.id}, client, label_prefix=settings.label_prefix)
            logger.info("removed leftovers of an earlier attempt task=%s: %s", task.request.id, report.as_dict())
        hostname = task.request.hostname or "local"
        return execute(plan, RunContext(client, settings, task.request.id, reporter, hostname, metrics()))
    except isolation.DockerUnavailableError as exc:
        countdown = min(2**task.request.retries, 30)
        raise task.retry(exc=exc, countdown=countdown, max_retries=settings.docker_retries) from exc


@contextmanager
def _only_copy_running(task: Task) -> Iterator[None]:
    """Hold a Redis lock on the task id while it runs, so two deliveries of one message never overlap.

    A broker outage can hand a running task's message out again; the second copy waits here for the
    first instead of running beside it. The lock is short-lived and renewed by a heartbeat thread, so a
    copy whose process was killed releases it within RUN_LOCK_TTL seconds.
    """
    if task.request.is_eager:
        yield
        return
    wait = app.settings.hard_time_limit + RUN_LOCK_TTL
    # thread_local=False: the heartbeat thread renews the lock, so the token must not live in this thread only.
    lock = app.redis.lock(
        RUNNING_KEY.format(task.request.id), timeout=RUN_LOCK_TTL, blocking_timeout=wait, thread_local=False
    )
    if not lock.acquire():
        raise RuntimeError(f"task {task.request.id} was still held by another delivery after {wait}s")
    stop = threading.Event()
    heartbeat = threading.Thread(target=_renew, args=(lock, stop), daemon=True, name="run-lock-heartbeat")
    heartbeat.start()
    try:
        yield
    finally:
        stop.set()
        heartbeat.join()
        release_lock(lock)


def _renew(lock: Any, stop: threading.Event) -> None:
    while not stop.wait(RUN_LOCK_TTL / 4):
        try:
            lock.reacquire()
        except redis.RedisError as exc:  # Redis away for a moment: try again at the next beat
            logger.warning("could not renew the run lock %s: %s", lock.name, exc)


def _stored_success(task: Task) -> dict[str, Any] | None:
    """The stored result of a delivery of this task that already succeeded, if any."""
    if task.request.is_eager:
        return None
    meta = task.backend.get_task_meta(task.request.id)
    if meta.get("status") == "SUCCESS" and isinstance(meta.get("result"), dict):
        return dict(meta["result"])
    return None


def _count_delivery(task: Task) -> int:
    """Count this delivery in Redis (which has no delivery count) and refuse past the redelivery cap."""
    if task.request.is_eager:
        return 1
    settings = app.settings
    key = DELIVERY_KEY.format(task.request.id)
    with app.redis.pipeline() as pipe:
        pipe.incr(key)
        # Long enough to outlive every redelivery (each waits up to a visibility timeout) plus the result.
        ttl = settings.visibility_timeout * (settings.max_redeliveries + 2) + settings.result_expires_seconds
        pipe.expire(key, ttl)
        count = int(pipe.execute()[0]) - int(task.request.retries)
    if count > settings.max_redeliveries + 1:
        isolation.remove_labelled({"task": task.request.id}, app.docker_client, label_prefix=settings.label_prefix)
        raise RedeliveryLimitError(
            f"task {task.request.id} was delivered {count} times and its worker died each time "
            f"(killed or out of memory?); giving up after {settings.max_redeliveries} redeliveries"
        )
    return count


def _reporter(task: Task, tool: str, tenant_id: str, run_id: str) -> Reporter:
    def report(stage: str, meta: Mapping[str, Any]) -> None:
        if task.request.is_eager:
            return  # eager mode has no worker, no broker and nobody watching: nothing to publish
        info = {"stage": stage, "tool": tool, "tenant_id": tenant_id, "run_id": run_id, **meta}
        try:
            task.update_state(state="PROGRESS", meta=info)
            # Flower shows a custom event's type as the task's state and keeps only its known fields, of
            # which `result` is one: carrying the progress there puts it in Flower's list and task info.
            task.send_event("task-progress", result=info)
        except (redis.RedisError, OSError, kombu.exceptions.OperationalError) as exc:
            # Progress is best effort: a Redis blip must not fail a scan that is running fine.
            logger.warning("progress not published task=%s stage=%s: %s", task.request.id, stage, exc)

    return report


def _tool_task(tool: str) -> Task:
    def run(
        self: Task,
        tenant_id: str,
        run_id: str,
        params: dict[str, Any] | None = None,
        files: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        return run_request(self, tool, tenant_id, run_id, params, files)

    run.__doc__ = f"Run {tool} for a tenant's run and return its parsed findings."
    run.__name__ = run.__qualname__ = f"run_{tool}"
    task: Task = app.task(bind=True, name=f"toolrunner.tools.{tool}")(run)
    return task


TOOL_TASKS: dict[str, Task] = {name: _tool_task(name) for name in load_catalogue()}
