"""Deliveries counted in Redis: past the cap (a run that kills its worker each time) the run is refused; after an
earlier delivery or try, what it left is removed before the tool runs again (see the execute step)."""

from __future__ import annotations

import isolation
from tasks.errors import RedeliveryLimitError
from tasks.service import RunResult
from tasks.worker.context import Run
from tasks.worker.delivery import count_delivery
from tasks.worker.steps import Proceed, Step


def _redelivery(run: Run, proceed: Proceed) -> RunResult:
    services, retries = run.services, int(run.task.request.retries)
    try:
        count = count_delivery(services.redis, services.settings, run.delivery.key, retries)
    except RedeliveryLimitError:
        isolation.remove_labelled(run.delivery.labels, services.engine(), label_prefix=services.settings.label_prefix)
        raise
    run.earlier = count > 1 or bool(retries)
    return proceed(run)


STEP = Step("redelivery", _redelivery)
