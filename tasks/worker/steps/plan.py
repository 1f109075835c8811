"""Validate the request into a plan: bad input fails at once, before any engine call, and ends what it held."""

from __future__ import annotations

from tasks.errors import TaskInputError
from tasks.service import RunResult, plan_run
from tasks.worker import fairshare, targets
from tasks.worker.context import Run
from tasks.worker.steps import Proceed, Step


def _plan(run: Run, proceed: Proceed) -> RunResult:
    settings = run.services.settings
    try:
        spec = run.services.catalogue.get(str(run.request.tool))
        run.request = targets.loaded(
            run.services.artifacts, spec, run.request, run.task_id
        )  # a big run's, stored beside it
        run.plan = plan_run(
            run.services.catalogue, run.request, max_input_bytes=settings.max_input_bytes,
            max_timeout_seconds=settings.max_timeout_seconds, max_cache_age_seconds=settings.cache_max_age_seconds,
            max_chunked_targets=settings.max_chunked_targets,
        )  # fmt: skip
    except TaskInputError:
        if not run.eager:
            fairshare.end_unstarted(run.task, run.services.redis, settings, only_this_message=True)
        raise
    return proceed(run)


STEP = Step("plan", _plan, needs_broker=False)
