"""A run cancelled before it started ends REVOKED here: no volume, no container, nothing it held left behind."""

from __future__ import annotations

from tasks.service import RunResult
from tasks.worker import fairshare
from tasks.worker.cancel import is_cancelled
from tasks.worker.context import Run
from tasks.worker.control import revoke_cancelled
from tasks.worker.steps import Proceed, Step


def _cancelled(run: Run, proceed: Proceed) -> RunResult:
    redis_client, settings = run.services.redis, run.services.settings
    if is_cancelled(redis_client, run.task_id, run.delivery.tenant_id):
        fairshare.end_unstarted(run.task, redis_client, settings)
        raise revoke_cancelled(run.task, redis_client, settings, run.delivery)
    return proceed(run)


STEP = Step("cancelled", _cancelled)
