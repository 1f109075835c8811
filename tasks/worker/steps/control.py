"""Run control: a cancel, a revoke with terminate or a deploy stops the running tool within a second."""

from __future__ import annotations

from tasks.service import RunResult
from tasks.worker.context import Run
from tasks.worker.control import controlled
from tasks.worker.steps import Proceed, Step


def _control(run: Run, proceed: Proceed) -> RunResult:
    with controlled(run.task, run.services.redis, run.services.settings, run.delivery) as control:
        run.guard = control.guard
        return proceed(run)


STEP = Step("control", _control)
