"""Intrusive tools: a run of one (ToolSpec.intrusive) for a tenant no operator opted in is bad input, refused before
its scope is read, the cache is looked up or anything is made, and logged as an event.

The opt-in is read from Redis on every delivery (`toolrunner limits set --tenant T --allow-intrusive`), so a parked
run, published again when it may start, is checked again: an opt-in taken back meanwhile refuses it. Redis not
answering fails the run (fail closed), never lets it through.
"""

from __future__ import annotations

import logging

from tasks.errors import IntrusiveToolError
from tasks.service import RunResult
from tasks.service.intrusive import refuse_unless_opted_in
from tasks.worker import fairshare
from tasks.worker.context import Run
from tasks.worker.limits import intrusive_allowed
from tasks.worker.steps import Proceed, Step

logger = logging.getLogger(__name__)


def _intrusive(run: Run, proceed: Proceed) -> RunResult:
    services, plan = run.services, run.plan
    if not plan.spec.intrusive:
        return proceed(run)  # no Redis read for the tools that cannot harm a target
    try:
        refuse_unless_opted_in(plan.spec, plan.tenant_id, opted_in=intrusive_allowed(services.redis, plan.tenant_id))
    except IntrusiveToolError as exc:
        logger.warning(
            "intrusive event=refused tenant=%s run=%s task=%s tool=%s: %s",
            plan.tenant_id, plan.run_id, run.task_id, plan.spec.name, exc,
        )  # fmt: skip
        if not run.eager:
            fairshare.end_unstarted(run.task, services.redis, services.settings, only_this_message=True)
        raise
    return proceed(run)


STEP = Step("intrusive", _intrusive, needs_broker=False)
