"""The run itself: the tool in its volumes on the engine; an unreachable engine is retried with backoff."""

from __future__ import annotations

import logging

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

import isolation
from config import Settings
from tasks.audit import Kind
from tasks.scope.check import outside
from tasks.service import RunContext, RunPlan, RunResult, at_rate, execute
from tasks.service.plan import unleased
from tasks.worker import audit
from tasks.worker.context import Run
from tasks.worker.metrics import metrics
from tasks.worker.steps import Proceed, Step

logger = logging.getLogger(__name__)


def _execute(run: Run, proceed: Proceed) -> RunResult:  # the last step: there is nothing to proceed to
    services, task_id = run.services, run.task_id
    try:
        client = services.engine()
        if run.earlier:
            # An earlier delivery's worker died mid-run, or an earlier try lost the engine: remove what it
            # left before running again.
            report = isolation.remove_labelled(run.delivery.labels, client, label_prefix=services.settings.label_prefix)
            logger.info("removed leftovers of an earlier attempt task=%s: %s", task_id, report.as_dict())
        ctx = RunContext(
            client, services.settings, task_id, run.reporter(), worker=run.task.request.hostname or "local",
            metrics=metrics(), artifacts=services.artifacts, interruptions=(SoftTimeLimitExceeded,),
            outside=outside(run.scope, services.scope_checker.policy) if run.scope is not None else None,
            images=services.images,
            # A chunk's findings go to its findings.jsonl, never into its result: its parent's merge streams them
            # from there, and Redis holds none of them while the parent's other chunks run.
            inline_bytes=0 if run.chunk is not None and services.artifacts is not None else None,
        )  # fmt: skip
        plan = rated(run)
        image = services.settings.image_for(plan.spec.name, plan.spec.image)
        services.images.present(client, image)  # execute's own check, made first: the ID the audit records (if any)
        audit.record(
            Kind.RUN_STARTED, strict=True, tenant=plan.tenant_id, run_id=plan.run_id, task_id=task_id,
            tool=plan.spec.name, image_id=services.images.id_of(image), argv=list(plan.invocation.argv),
            targets=audit.targets(plan), resolved=run.resolved, detail={"image": image, "rate": run.rate},
        )  # fmt: skip
        result = execute(plan, ctx)
        if not services.images.id_of(image):  # pulled by this run: the ID its audit records
            services.images.present(client, image)
        return result
    except isolation.DockerUnavailableError as exc:
        raise retry(run.task, exc, services.settings) from exc


def rated(run: Run) -> RunPlan:
    """The plan with the rate admission gave the run per host (the tool told it through its own option; a
    request's own lower rate stays). An in-process run holds no host lease: it gets the default share."""
    if run.eager:
        return unleased(run.plan, run.services.settings, bool(run.reached))
    return at_rate(run.plan, run.rate) if run.rate > 0 else run.plan


def retry(task: Task, exc: isolation.DockerUnavailableError, settings: Settings) -> Exception:
    """The task's retry for an unreachable engine: 1, 2, 4 ... 30 s apart, TOOLRUNNER_DOCKER_RETRIES times, then
    the error itself. A retry is a delivery of its own but no worker death: count_delivery subtracts them."""
    countdown = min(2**task.request.retries, 30)
    return task.retry(exc=exc, countdown=countdown, max_retries=settings.docker_retries)  # type: ignore[no-any-return]


STEP = Step("execute", _execute, needs_broker=False)
