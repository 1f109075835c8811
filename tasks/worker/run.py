"""The run tasks: `toolrunner.run_tool` and one `toolrunner.tools.<tool>` per catalogue tool."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import docker
import kombu.exceptions
import redis
from celery import Task
from celery.exceptions import Ignore, Reject, Retry, SoftTimeLimitExceeded
from celery.signals import task_revoked

import isolation
from config import Settings
from tasks.artifacts import Artifacts
from tasks.errors import RedeliveryLimitError, TaskIdentityError, TaskInputError
from tasks.service import Reporter, RunContext, RunPlan, RunRequest, Stage, execute, plan_run
from tasks.tools import ToolSpec, load_catalogue
from tasks.worker import fairshare, parking
from tasks.worker.app import app
from tasks.worker.cache import result_cache
from tasks.worker.cancel import is_cancelled
from tasks.worker.control import controlled, revoke_cancelled
from tasks.worker.delivery import RUN_LOCK_TTL, Delivery, claim_identity, count_delivery, run_lock
from tasks.worker.fairshare import tenant_slot
from tasks.worker.metrics import metrics
from tasks.worker.progress import reporter

logger = logging.getLogger(__name__)

Result = dict[str, Any]


@app.task(bind=True, name="toolrunner.run_tool")
def run_tool(
    self: Task, tool: str, tenant_id: str, run_id: str, params: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
) -> Result:  # fmt: skip
    """Run one tool for a tenant's run and return its parsed findings."""
    return _run(self, RunRequest(tool, tenant_id, run_id, params, files))


def _tool_task(tool: str) -> Task:
    def run(
        self: Task, tenant_id: str, run_id: str, params: dict[str, Any] | None = None,
        files: dict[str, str] | None = None,
    ) -> Result:  # fmt: skip
        return _run(self, RunRequest(tool, tenant_id, run_id, params, files))

    run.__doc__ = f"Run {tool} for a tenant's run and return its parsed findings."
    run.__name__ = run.__qualname__ = f"run_{tool}"
    task: Task = app.task(bind=True, name=f"toolrunner.tools.{tool}")(run)
    return task


def _run(task: Task, request: RunRequest) -> Result:
    try:
        # A pool process makes its engine client at its first run, which asks the engine for its API version:
        # an engine that is restarting then is retried with backoff like one that goes away mid-run.
        client = app.docker_client
    except isolation.DockerUnavailableError as exc:
        raise _retry(task, exc, app.settings) from exc
    return run_request(task, request, client, app.redis, app.settings, app.catalogue, artifacts=app.artifacts)


def run_request(
    task: Task,
    request: RunRequest,
    client: docker.DockerClient,
    redis_client: redis.Redis,
    settings: Settings,
    catalogue: Mapping[str, ToolSpec],
    artifacts: Artifacts | None = None,
) -> Result:
    """Validate, run and shape the result; bad input fails at once, an unreachable engine is retried.

    A task id already bound to another run is refused without writing any state under it (Ignore): the
    id's stored state stays the other run's, and `result_for` tells the reader the id is not theirs.
    Every way out before admission ends what fair share held for this message (see _end_unstarted).
    """
    try:
        plan = plan_run(
            catalogue, request, max_input_bytes=settings.max_input_bytes,
            max_timeout_seconds=settings.max_timeout_seconds,
        )  # fmt: skip
    except TaskInputError:
        if not task.request.is_eager:
            _end_unstarted(task, redis_client, settings, only_this_message=True)
        raise
    delivery = Delivery(task.request.id, plan.spec.name, plan.tenant_id, plan.run_id)
    if task.request.is_eager:
        return _run_or_retry(task, plan, delivery, client, settings, artifacts, earlier=bool(task.request.retries))
    try:
        claim_identity(redis_client, delivery, ttl=settings.identity_ttl)
    except TaskIdentityError as exc:
        # Nothing parked under this id is this message's: the drain binds an id before it parks a run, and
        # the binding outlives any parking. Whatever is there is the other run's and stays.
        logger.error("refused task=%s: %s", delivery.task_id, exc)
        raise Ignore() from exc
    if is_cancelled(redis_client, delivery.task_id, delivery.tenant_id):
        _end_unstarted(task, redis_client, settings)
        raise revoke_cancelled(task, redis_client, settings, delivery)
    with result_cache(task, plan, client, redis_client, settings) as cached:  # behind an identical run: parked
        if cached.hit is not None:
            return cached.hit
        with tenant_slot(task, plan, redis_client, settings):  # over the tenant's cap: parked here (Ignore)
            reporter(task, plan.spec.name, plan.tenant_id, plan.run_id)(Stage.VALIDATING, {})
            return _stored(task, lambda: cached.keep(redis_client, settings, _run_once(
                task, plan, delivery, client, redis_client, settings, artifacts
            )))  # fmt: skip


def _stored(task: Task, run: Callable[[], Result]) -> Result:
    """Run, and store the run's final state before its tenant slot is let go (Celery stores it again after).

    Letting go marks the run done, and a later copy of its message is dropped for that: a worker killed between
    the two used to leave the run PROGRESS for ever, its redelivered message dropped as "already ended". A retry,
    a put-back or a park (Retry, Reject, Ignore) is no final state and stores nothing here.
    """
    try:
        result = run()
    except (Retry, Reject, Ignore):
        raise
    except Exception as exc:
        task.backend.mark_as_failure(task.request.id, exc)
        raise
    task.backend.mark_as_done(task.request.id, result)
    return result


def _run_once(
    task: Task,
    plan: RunPlan,
    delivery: Delivery,
    client: docker.DockerClient,
    redis_client: redis.Redis,
    settings: Settings,
    artifacts: Artifacts | None,
) -> Result:
    """Run under the run lock, unless another delivery already did; a cancel or a drain stops it."""
    with run_lock(redis_client, delivery.key, wait=settings.hard_time_limit + RUN_LOCK_TTL):
        done = _stored_success(task, delivery)
        if done is not None:
            logger.info("task=%s already succeeded in another delivery; returning its result", task.request.id)
            return done
        earlier = _earlier_attempt(task, delivery, client, redis_client, settings)
        with controlled(task, redis_client, settings, delivery) as control:
            return _run_or_retry(
                task, plan, delivery, client, settings, artifacts, earlier=earlier, guard=control.guard
            )


def _end_unstarted(
    task: Task, redis_client: redis.Redis, settings: Settings, *, only_this_message: bool = False
) -> None:
    """A run that ends before admission (bad input, cancelled): what it held parked, picked or leased goes.

    With `only_this_message`, only when the envelope parked under this id is this very message: a message
    that reuses the id of another run (parked, or running with its lease) must not end that run, and a
    message that was never parked holds nothing.
    """
    if only_this_message:
        parked = parking.load(redis_client, [task.request.id])
        mine = (task.name, list(task.request.args or ()), dict(task.request.kwargs or {}))
        if not parked or (parked[0].task, parked[0].args, parked[0].kwargs) != mine:
            return
    _best_effort_end(task.app, redis_client, task.request.id, settings)


@task_revoked.connect
def _revoked(request: Any = None, **_: Any) -> None:
    """Celery dropped a revoked or expired message unrun: it never runs, so its parked state ends too."""
    task_id = getattr(request, "id", None)
    if task_id and str(getattr(request, "task", "")).startswith("toolrunner."):  # the context's task name
        _best_effort_end(app, app.redis, str(task_id), app.settings)


def _best_effort_end(celery_app: Any, redis_client: redis.Redis, task_id: str, settings: Settings) -> None:
    try:
        fairshare.end_parked(celery_app, redis_client, task_id, settings)
    except (redis.RedisError, kombu.exceptions.OperationalError) as exc:  # the safety net recovers the slot
        logger.warning("could not end the parked state of task=%s: %s", task_id, exc)


def _run_or_retry(
    task: Task,
    plan: RunPlan,
    delivery: Delivery,
    client: docker.DockerClient,
    settings: Settings,
    artifacts: Artifacts | None,
    *,
    earlier: bool,
    guard: Callable[[Reporter], Reporter] = lambda report: report,
) -> Result:
    """Run the plan; when the engine is unreachable, retry with backoff a bounded number of times."""
    try:
        if earlier:
            # An earlier delivery's worker died mid-run, or an earlier try lost the engine: remove what
            # it left before running again.
            report = isolation.remove_labelled(delivery.labels, client, label_prefix=settings.label_prefix)
            logger.info("removed leftovers of an earlier attempt task=%s: %s", delivery.task_id, report.as_dict())
        ctx = RunContext(
            client, settings, delivery.task_id, guard(reporter(task, plan.spec.name, plan.tenant_id, plan.run_id)),
            worker=task.request.hostname or "local", metrics=metrics(), artifacts=artifacts,
            interruptions=(SoftTimeLimitExceeded,),
        )  # fmt: skip
        return execute(plan, ctx).as_dict()
    except isolation.DockerUnavailableError as exc:
        raise _retry(task, exc, settings) from exc


def _retry(task: Task, exc: isolation.DockerUnavailableError, settings: Settings) -> Exception:
    """The task's retry for an unreachable engine: 1, 2, 4 ... 30 s apart, TOOLRUNNER_DOCKER_RETRIES times, then
    the error itself. A retry is a delivery of its own but no worker death: count_delivery subtracts them."""
    countdown = min(2**task.request.retries, 30)
    return task.retry(exc=exc, countdown=countdown, max_retries=settings.docker_retries)  # type: ignore[no-any-return]


def _earlier_attempt(
    task: Task, delivery: Delivery, client: docker.DockerClient, redis_client: redis.Redis, settings: Settings
) -> bool:
    """Whether an earlier delivery or try of this run happened; past the redelivery cap, clean up and refuse."""
    try:
        count = count_delivery(redis_client, settings, delivery.key, int(task.request.retries))
    except RedeliveryLimitError:
        isolation.remove_labelled(delivery.labels, client, label_prefix=settings.label_prefix)
        raise
    return count > 1 or bool(task.request.retries)


def _stored_success(task: Task, delivery: Delivery) -> Result | None:
    """The stored result of a delivery of this run that already succeeded, if any.

    What is stored under the id must be this run's: a result or progress report of another run refuses
    the request (TaskIdentityError) instead of handing one tenant another's findings.
    """
    meta = task.backend.get_task_meta(task.request.id)
    stored = meta.get("result")
    if isinstance(stored, dict):
        delivery.check(stored)
        if meta.get("status") == "SUCCESS":
            return dict(stored)
    return None


def result_for(task_id: str, tool: str, tenant_id: str, run_id: str, timeout: float | None = None) -> Result:
    """Wait for the result of the run `task_id` names, checking it is this tool's run for this tenant.

    The API tier's way to read a result: an id that names another run (a reused id) raises
    TaskIdentityError instead of handing over that run's findings; a failed run raises its error.
    """
    result: Result = run_tool.AsyncResult(task_id).get(timeout=timeout)
    Delivery(task_id, tool, tenant_id, run_id).check(result)
    return result


TOOL_TASKS: dict[str, Task] = {name: _tool_task(name) for name in load_catalogue()}
