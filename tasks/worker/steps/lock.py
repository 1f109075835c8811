"""The run lock: two deliveries of one run never overlap; one that finds the run already succeeded returns that."""

from __future__ import annotations

import logging

from tasks.service import RunResult
from tasks.worker.context import Run
from tasks.worker.delivery import RUN_LOCK_TTL, run_lock, stored_success
from tasks.worker.steps import Proceed, Step

logger = logging.getLogger(__name__)


def _lock(run: Run, proceed: Proceed) -> RunResult:
    wait = run.services.settings.hard_time_limit + RUN_LOCK_TTL
    with run_lock(run.services.redis, run.delivery.key, wait=wait):
        done = stored_success(run.task.backend, run.delivery)
        if done is not None:
            logger.info("task=%s already succeeded in another delivery; returning its result", run.task_id)
            return done
        return proceed(run)


STEP = Step("lock", _lock)
