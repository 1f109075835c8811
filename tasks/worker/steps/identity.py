"""Bind the task id to this run: an id already bound to another run is refused, writing nothing under it."""

from __future__ import annotations

import logging

from celery.exceptions import Ignore

from tasks.errors import TaskIdentityError
from tasks.service import RunResult
from tasks.worker.context import Run
from tasks.worker.delivery import claim_identity
from tasks.worker.steps import Proceed, Step

logger = logging.getLogger(__name__)


def _identity(run: Run, proceed: Proceed) -> RunResult:
    try:
        claim_identity(run.services.redis, run.delivery, ttl=run.services.settings.identity_ttl)
    except TaskIdentityError as exc:
        # Nothing parked under this id is this message's: the drain binds an id before it parks a run, and
        # the binding outlives any parking. Whatever is there is the other run's and stays; `result_for`
        # tells the reader the id is not theirs.
        logger.error("refused task=%s: %s", run.task_id, exc)
        raise Ignore() from exc
    return proceed(run)


STEP = Step("identity", _identity)
