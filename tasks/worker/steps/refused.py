"""A run refused before it was admitted (bad input, out of scope, an intrusive tool not opted in): its end recorded
as the ends of admitted runs are, so its tenant hears of it (a `run.failed` webhook event with the reason), and in
the audit trail (`run.refused`, with the targets it asked for: an abuse complaint may name a refused scan).

The steps that refuse (plan, intrusive, scope, split) raise TaskInputError and end what the message held; this step,
in front of them, records the end once. An error raised after the finished step recorded its own end is not
recorded again (`Run.ended`); a chunk's refusal is audited, and told to its tenant by its parent.
"""

from __future__ import annotations

from tasks.audit import Kind
from tasks.errors import TaskInputError
from tasks.service import RunResult
from tasks.worker import audit, completion
from tasks.worker.context import Run
from tasks.worker.steps import Proceed, Step


def _refused(run: Run, proceed: Proceed) -> RunResult:
    try:
        return proceed(run)
    except TaskInputError as exc:
        if not run.ended:
            _refuse(run, f"refused: {type(exc).__name__}: {exc}"[:1000])
        raise


def _refuse(run: Run, why: str) -> None:
    request = run.request
    tool, tenant, run_id = str(request.tool), str(request.tenant_id), str(request.run_id)
    found = audit.targets(run.plan) if run.planned else audit.raw_targets(request.params)
    audit.record(Kind.RUN_REFUSED, tenant=tenant, run_id=run_id, task_id=run.task_id, tool=tool, targets=found,
                 resolved=run.resolved, reason=why)  # fmt: skip
    if run.chunk is None and isinstance(request.tenant_id, str):  # a tenant to tell
        completion.failed(run.task.app, run.services.redis, run.task_id, tool, tenant, run_id, why)


STEP = Step("refused", _refused)
