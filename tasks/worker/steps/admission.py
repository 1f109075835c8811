"""Admission: a slot under the tenant's cap and a lease on every host the run reaches, taken together for the
whole run, or the run parks (fair share, host politeness)."""

from __future__ import annotations

from config import Settings
from tasks.scope.host import Span
from tasks.scope.reach import host_keys
from tasks.service import RunPlan, RunResult, Stage
from tasks.worker.context import Run
from tasks.worker.fairshare import Reach, tenant_slot
from tasks.worker.steps import Proceed, Step


def _admission(run: Run, proceed: Proceed) -> RunResult:
    services = run.services
    reach = reach_of(run.plan, run.reached, services.settings)
    with tenant_slot(run.task, run.plan, services.redis, services.settings, reach) as rate:  # over a cap: parked
        run.rate = rate
        run.report(Stage.VALIDATING, {})
        return proceed(run)


def reach_of(plan: RunPlan, reached: list[Span], settings: Settings) -> Reach:
    """The run's host keys and rates as admission leases them; nothing while politeness is off."""
    if settings.politeness == "off" or not reached:
        return Reach()
    spec = plan.spec
    asked = getattr(plan.params, spec.rate_param, None) if spec.rate_param else None
    least = 1.0 if spec.rate_param and spec.rate_integer else 0.0
    return Reach([key.wire() for key in host_keys(reached, settings.host_wide_after)], float(asked or 0), least)


STEP = Step("admission", _admission)
