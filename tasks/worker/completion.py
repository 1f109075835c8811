"""A run's completion recorded where it outlives Redis: its result stored as `result.json` in the artifact store.

Called with the run's final result before the result backend stores it (the finished step, a cache hit, a chunked
parent's merge); never for a chunk, whose result is its parent's business. Storing it again is harmless: a
redelivery that returns the stored result replaces `result.json` with the same result.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from tasks.artifacts import ArtifactError, Artifacts

logger = logging.getLogger(__name__)


def keep_result(artifacts: Artifacts | None, result: Mapping[str, Any]) -> None:
    """Store the run's result in the artifact store; a store that fails is logged, never fails the finished run
    (its result is still in the backend for TOOLRUNNER_RESULT_EXPIRES_SECONDS)."""
    if artifacts is None:
        return
    tenant, run, task_id = result["tenant_id"], result["run_id"], result["task_id"]
    try:
        artifacts.keep_result(tenant, run, task_id, result)
    except (ArtifactError, OSError) as exc:
        logger.error("result.json not stored task=%s tenant=%s run=%s: %s", task_id, tenant, run, exc)
