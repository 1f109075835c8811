"""Stopping a run from outside while it runs: a cancel, a revoke with terminate, or its worker shutting down.

A watcher thread polls Redis once a second for the run's cancel key and its worker's draining key; a SIGTERM
to the pool child (Celery's `revoke(terminate=True)`) only sets a flag. The run itself stops at its next
progress report (each second while the tool runs), where the guarded reporter raises: the runner then kills the
tool container and removes both volumes on its normal way out, and no progress is written after that.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import Any

import redis
from celery import Task
from celery.exceptions import Ignore, Reject

from config import Settings
from tasks.audit import Kind
from tasks.errors import RunCancelledError, RunRequeuedError, RunStoppedError
from tasks.service import Reporter, Stage
from tasks.worker import audit, completion, keys
from tasks.worker.cancel import cancel_keys, record_cancel
from tasks.worker.delivery import Delivery
from tasks.worker.monitor import announce_revoked

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0


class RunControl:
    """The stop request of one running task, set by the watcher thread or a SIGTERM, read by its reporter."""

    def __init__(
        self, redis_client: redis.Redis, settings: Settings, task_id: str, worker: str, tenant_id: str
    ) -> None:
        self.redis, self.settings, self.task_id, self.worker = redis_client, settings, task_id, worker
        self.tenant_id = tenant_id
        self.stop: type[RunStoppedError] | None = None
        self.reason = ""
        self.signalled = False
        self.done = threading.Event()

    def guard(self, report: Reporter) -> Reporter:
        """A reporter that raises the stop request instead of reporting once there is one."""

        def guarded(stage: Stage, meta: Mapping[str, Any]) -> None:
            if self.stop is not None:
                raise self.stop(f"{self.reason}: task {self.task_id} stopped at {stage.value}")
            report(stage, meta)

        return guarded

    def watch(self) -> None:
        """Poll the cancel and draining keys until the run ends or a stop is decided."""
        cancels = cancel_keys(self.task_id, self.tenant_id)
        watched = [keys.DRAINING(self.worker), keys.LEASE_LOST(self.task_id), *cancels]
        while self.stop is None and not self.done.wait(POLL_SECONDS):
            try:
                draining, lost, *cancelled_by = self.redis.mget(watched)
                cancelled = any(cancelled_by)
            except redis.RedisError as exc:  # Redis away for a moment: poll again
                logger.warning("could not read the cancel key task=%s: %s", self.task_id, exc)
                continue
            if cancelled or (self.signalled and not draining):
                self.stop, self.reason = RunCancelledError, "cancelled"
            elif draining:
                self.stop, self.reason = RunRequeuedError, "worker shutting down"
            elif lost:  # its tenant slot expired and was taken meanwhile: it waits its turn again
                self.stop, self.reason = RunRequeuedError, "its tenant slot was lost"
        if self.stop is not None:
            logger.warning("stopping task=%s: %s", self.task_id, self.stop.__name__)

    def on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        """A SIGTERM to the pool child: Celery's terminate, or a deploy signalling the whole group."""
        self.signalled = True  # the watcher decides at its next poll: draining worker -> requeue, else cancel


@contextmanager
def controlled(task: Task, redis_client: redis.Redis, settings: Settings, delivery: Delivery) -> Iterator[RunControl]:
    """Watch the run while the block runs; turn a stop into REVOKED (cancel) or a requeued message (deploy)."""
    control = RunControl(redis_client, settings, delivery.task_id, task.request.hostname or "", delivery.tenant_id)
    watcher = threading.Thread(target=control.watch, daemon=True, name=f"run-control-{delivery.task_id}")
    previous = _install_sigterm(control)
    watcher.start()
    try:
        yield control
    except RunCancelledError as exc:
        raise _revoked(task, redis_client, settings, delivery, str(exc)) from exc
    except RunRequeuedError as exc:
        raise _requeued(redis_client, delivery, control.reason) from exc
    finally:
        control.done.set()
        watcher.join()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _install_sigterm(control: RunControl) -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None  # signals reach only the main thread (a solo or threads pool runs tasks elsewhere)
    return signal.signal(signal.SIGTERM, control.on_sigterm)


def revoke_cancelled(task: Task, redis_client: redis.Redis, settings: Settings, delivery: Delivery) -> Ignore:
    """End a run cancelled before it started: REVOKED, no volume, no container."""
    return _revoked(task, redis_client, settings, delivery, "cancelled before it started")


def _revoked(task: Task, redis_client: redis.Redis, settings: Settings, delivery: Delivery, why: str) -> Ignore:
    # A revoke with terminate is recorded too, so a redelivery of this message would not run it again.
    record_cancel(redis_client, delivery.task_id, delivery.tenant_id, settings.identity_ttl)
    # The last word on the task's state: written after the run's last progress report, never before.
    reason = why if why.startswith("cancelled") else f"cancelled: {why}"  # a RunCancelledError's says so already
    task.backend.mark_as_revoked(delivery.task_id, reason)
    if not task.request.is_eager:  # and what Flower shows: REVOKED, not the PROGRESS of its last report
        announce_revoked(task.app, delivery.task_id, task.request.hostname, reason)
    logger.info("run cancelled task=%s tenant=%s run=%s", delivery.task_id, delivery.tenant_id, delivery.run_id)
    d = delivery
    audit.record(Kind.RUN_CANCELLED, tenant=d.tenant_id, run_id=d.run_id, task_id=d.task_id, tool=d.tool, reason=reason)
    if not task.request.is_eager and not (task.request.kwargs or {}).get("chunk"):  # a chunk's: its parent's
        d = delivery
        completion.cancelled(task.app, redis_client, d.task_id, d.tool, d.tenant_id, d.run_id, reason)
    return Ignore()


def _requeued(redis_client: redis.Redis, delivery: Delivery, why: str) -> Reject:
    # A graceful put-back is not a worker that died: take this delivery off the redelivery count.
    with redis_client.pipeline() as pipe:
        pipe.decr(keys.DELIVERIES(delivery.key))
        pipe.delete(keys.LEASE_LOST(delivery.task_id))
        pipe.execute()
    logger.warning("run put back on the queue (%s) task=%s run=%s", why, delivery.task_id, delivery.run_id)
    d = delivery
    audit.record(Kind.RUN_PUT_BACK, tenant=d.tenant_id, run_id=d.run_id, task_id=d.task_id, tool=d.tool, reason=why)
    return Reject(f"{why}: run put back on the queue", requeue=True)
