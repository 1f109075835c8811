"""Scope: every target of the run, as its tool reads it, in the tenant's scope, not denied and reachable from the
tool's network (loopback only from the host's); else bad input.

It comes before the cache lookup and before anything is made: a refused run leaves no volume, no container
and no cached result, and it is logged as an event (tenant, run, task, tool, the refused targets). The operator's
scope settings are read when the worker starts (tasks/worker/scoping.py).
"""

from __future__ import annotations

import logging

from tasks.errors import OutOfScopeError, UnreachableTargetError
from tasks.scope.check import check
from tasks.scope.matcher import Scope
from tasks.service import RunResult
from tasks.worker import fairshare
from tasks.worker.context import Run
from tasks.worker.steps import Proceed, Step

logger = logging.getLogger(__name__)


def _scope(run: Run, proceed: Proceed) -> RunResult:
    services, plan = run.services, run.plan
    enforced = services.settings.scope == "enforce"
    if enforced:
        run.scope = services.scopes.of(plan.tenant_id) if plan.spec.targets is not None else Scope()
    network = plan.spec.network or services.settings.tool_network
    try:
        run.reached = check(
            plan.spec, plan.params, plan.tenant_id, scope=run.scope, network=network, checker=services.scope_checker,
            resolved=run.resolved,
        )  # fmt: skip
    except (OutOfScopeError, UnreachableTargetError) as exc:
        logger.warning(
            "scope event=refused tenant=%s run=%s task=%s tool=%s: %s",
            plan.tenant_id, plan.run_id, run.task_id, plan.spec.name, exc,
        )  # fmt: skip
        if not run.eager:
            fairshare.end_unstarted(run.task, services.redis, services.settings, only_this_message=True)
        raise
    return proceed(run)


STEP = Step("scope", _scope, needs_broker=False)
