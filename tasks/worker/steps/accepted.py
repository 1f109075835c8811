"""A run accepted: valid, in its tenant's scope and reaching only what it may. Recorded in the audit trail before
anything else happens to it (`run.accepted`: its targets, argv, and the addresses its names resolved to now), and
strictly: a worker that cannot write its audit spool fails the run rather than scan unrecorded.

A run accepted again (a redelivery, a parked run dispatched) is recorded again, by the worker that took it then.
"""

from __future__ import annotations

from tasks.audit import Kind
from tasks.service import RunResult
from tasks.worker import audit
from tasks.worker.context import Run
from tasks.worker.steps import Proceed, Step


def _accepted(run: Run, proceed: Proceed) -> RunResult:
    plan = run.plan
    audit.record(
        Kind.RUN_ACCEPTED, strict=True, tenant=plan.tenant_id, run_id=plan.run_id, task_id=run.task_id,
        tool=plan.spec.name, argv=[] if plan.chunked else list(plan.invocation.argv), targets=audit.targets(plan),
        resolved=run.resolved, detail=_detail(run),
    )  # fmt: skip
    return proceed(run)


def _detail(run: Run) -> dict[str, object]:
    """A chunk names its parent; a parent says how many chunks it splits into (each is accepted on its own)."""
    if run.chunk is not None:
        return {"parent": run.chunk.parent, "chunk": run.chunk.index}
    if run.plan.chunked is not None:
        return {"chunks": run.plan.chunked.chunks}
    return {}


STEP = Step("accepted", _accepted)
