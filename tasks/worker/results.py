"""Reading a run's result after the fact: the result backend's while it keeps it, then the artifact store's copy.

The backend forgets a result after TOOLRUNNER_RESULT_EXPIRES_SECONDS; `result.json` in the artifact store
(tasks/worker/completion.py) stays for the artifact retention. Both are read for one tenant only: another tenant's
run is refused (TaskIdentityError) while its id is still bound, and is not found once nothing says whose it was.
"""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery, states

from tasks.artifacts import ArtifactNotFoundError, Artifacts
from tasks.errors import TaskIdentityError
from tasks.worker.delivery import bound_tenant

Result = dict[str, Any]


def kept_result(artifacts: Artifacts, redis_client: redis.Redis, task_id: str, tenant_id: str) -> Result | None:
    """The tenant's run's result from the artifact store, or None when it has none (yet, or any more).

    A task id bound to another tenant's run raises TaskIdentityError, as reading it from the backend does.
    """
    try:
        return artifacts.kept_result(task_id, tenant=tenant_id)
    except ArtifactNotFoundError:
        refuse_another_tenant(redis_client, task_id, tenant_id)
        return None


def refuse_another_tenant(redis_client: redis.Redis, task_id: str, tenant_id: str) -> None:
    """Raise TaskIdentityError when the task id is bound to another tenant's run."""
    owner = bound_tenant(redis_client, task_id)
    if owner is not None and owner != tenant_id:
        raise TaskIdentityError(f"task id {task_id} stands for another tenant's run: its result is not yours")


def finished_result(
    celery: Celery, artifacts: Artifacts, redis_client: redis.Redis, task_id: str, tenant_id: str
) -> tuple[str, Result | None]:
    """The run's state and, once it succeeded, its result, without waiting: the backend's, else the artifact store's.

    A state other than SUCCESS comes with None (PENDING: not finished, or nothing is known of it any more).
    """
    meta = celery.backend.get_task_meta(task_id, cache=False)
    state = str(meta.get("status", states.PENDING))
    if state == states.SUCCESS and isinstance(meta.get("result"), dict):
        result: Result = meta["result"]
        if result.get("tenant_id") != tenant_id:
            raise TaskIdentityError(f"task id {task_id} stands for another tenant's run: its result is not yours")
        return state, result
    if state != states.PENDING:
        refuse_another_tenant(redis_client, task_id, tenant_id)
        return state, None
    kept = kept_result(artifacts, redis_client, task_id, tenant_id)
    return (states.SUCCESS, kept) if kept is not None else (state, None)
