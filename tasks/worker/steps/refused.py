"""A run refused before it was admitted (bad input, out of scope, an intrusive tool not opted in): its end recorded
as the ends of admitted runs are, so its tenant hears of it (a `run.failed` webhook event with the reason).

The steps that refuse (plan, intrusive, scope, split) raise TaskInputError and end what the message held; this step,
in front of them, records the end once. An error raised after the finished step recorded its own end is not
recorded again (`Run.ended`), and a chunk's refusal is its parent's business.
"""

from __future__ import annotations

from tasks.errors import TaskInputError
from tasks.service import RunResult
from tasks.worker import completion
from tasks.worker.context import Run
from tasks.worker.steps import Proceed, Step


def _refused(run: Run, proceed: Proceed) -> RunResult:
    try:
        return proceed(run)
    except TaskInputError as exc:
        request = run.request
        if run.chunk is None and not run.ended and isinstance(request.tenant_id, str):  # a tenant to tell
            why = f"refused: {type(exc).__name__}: {exc}"[:1000]
            app, conn = run.task.app, run.services.redis
            completion.failed(app, conn, run.task_id, str(request.tool), request.tenant_id, str(request.run_id), why)
        raise


STEP = Step("refused", _refused)
