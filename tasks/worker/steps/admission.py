"""Tenant admission: a slot under the tenant's cap for the whole run, or the run parks (fair share)."""

from __future__ import annotations

from tasks.service import RunResult, Stage
from tasks.worker.context import Run
from tasks.worker.fairshare import tenant_slot
from tasks.worker.steps import Proceed, Step


def _admission(run: Run, proceed: Proceed) -> RunResult:
    with tenant_slot(run.task, run.plan, run.services.redis, run.services.settings):  # over the cap: parked
        run.report(Stage.VALIDATING, {})
        return proceed(run)


STEP = Step("admission", _admission)
