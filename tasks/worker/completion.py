"""A run's end recorded where it outlives Redis and where its tenant hears of it: its result kept as
`result.json` in the artifact store, and its webhook event in the outbox (tasks/worker/webhooks.py).

Called with the run's final result before the result backend stores it (the finished step, a cache hit, a chunked
parent's merge), with a cancel as the run ends REVOKED, and with the error of an admitted run that raised; never
for a chunk, whose end is its parent's business. Seeing an end again is harmless: a redelivery that returns the
stored result replaces `result.json` with the same result, and its event exists already (one event, one id, per
run).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import redis
from celery import Celery

from tasks.artifacts import ArtifactError, Artifacts
from tasks.webhooks import event
from tasks.worker import webhooks

logger = logging.getLogger(__name__)


def completed(
    celery: Celery, redis_client: redis.Redis, artifacts: Artifacts | None, result: Mapping[str, Any]
) -> None:
    """A top-level run's final result: kept in the artifact store, then its event recorded."""
    keep_result(artifacts, result)
    webhooks.emit_result(celery, redis_client, result)


def cancelled(celery: Celery, redis_client: redis.Redis, task_id: str, tool: str, tenant: str, run_id: str,
              reason: str) -> None:  # fmt: skip
    """A top-level run that ended REVOKED by a cancel: its `run.cancelled` event recorded."""
    webhooks.emit_end(celery, redis_client, task_id, tool, tenant, run_id, event.CANCELLED_STATUS, reason)


def failed(celery: Celery, redis_client: redis.Redis, task_id: str, tool: str, tenant: str, run_id: str,
           reason: str) -> None:  # fmt: skip
    """A top-level run that raised once admitted (its state FAILURE): its `run.failed` event, status `error`."""
    webhooks.emit_end(celery, redis_client, task_id, tool, tenant, run_id, event.ERROR_STATUS, reason)


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
