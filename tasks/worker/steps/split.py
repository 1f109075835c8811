"""A run with more targets than its tool's chunk holds becomes a parent: its chunks go out as runs of their own.

After the scope check (the whole target list, once) and before the cache and admission: a parent takes no
tenant slot and no host lease, and its message is let go once its chunks are published (tasks/worker/chunks.py).
"""

from __future__ import annotations

from celery.exceptions import Ignore

from tasks.errors import TaskInputError
from tasks.service import RunResult
from tasks.worker import chunks
from tasks.worker.context import Run
from tasks.worker.steps import Proceed, Step


def _split(run: Run, proceed: Proceed) -> RunResult:
    chunked = run.plan.chunked
    if chunked is None:
        return proceed(run)
    if run.eager:
        raise TaskInputError(
            f"{chunked.weight} targets split into {chunked.chunks} chunks of {chunked.size}, which run on workers: "
            "set TOOLRUNNER_BROKER_URL and start one (README, Calling it from the API tier), or send fewer targets"
        )
    chunks.start(run.task, run.services.redis, run.services.settings, run.plan)
    chunks.report(run.task.app, run.services.redis, run.task_id)
    raise Ignore()  # the message is done; the parent's result comes from its merge


STEP = Step("split", _split, needs_broker=False)
