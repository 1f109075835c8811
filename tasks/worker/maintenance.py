"""The orphan sweep as tasks: fanned out to every worker's daemon, never two at once on one daemon."""

from __future__ import annotations

import logging
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import docker
import redis
from celery import Task
from celery.signals import celeryd_after_setup
from celery.utils import worker_direct

import isolation
from config import Settings
from isolation import Label
from tasks.worker import keys, role
from tasks.worker.app import app
from tasks.worker.delivery import release_lock
from tasks.worker.metrics import metrics

logger = logging.getLogger(__name__)

SWEEP_EXPIRES = 1800


@app.task(bind=True, name="toolrunner.sweep_daemon")
def sweep_daemon(self: Task, max_age_hours: float | None = None) -> dict[str, Any]:
    """Sweep the Docker daemon of the worker this lands on; the report is the result."""
    settings = app.settings
    age = settings.sweep_max_age_hours if max_age_hours is None else max_age_hours
    return Sweeper(app.docker_client, app.redis, settings).sweep(age, self.request.hostname)


@app.task(name="toolrunner.sweep_all")
def sweep_all(max_age_hours: float | None = None) -> dict[str, Any]:
    """Send one sweep_daemon to each live worker's own queue: each worker may own a different daemon."""
    replies = app.control.ping(timeout=2.0) or []
    workers = sorted(name for reply in replies for name in reply)
    sent = {
        name: sweep_daemon.apply_async(
            kwargs={"max_age_hours": max_age_hours}, queue=worker_direct(name), expires=SWEEP_EXPIRES
        ).id
        for name in workers
    }
    logger.info("sweep sent to %d worker(s): %s", len(sent), ", ".join(sent))
    return {"workers": sent}


@dataclass(frozen=True)
class Sweeper:
    """Sweeps one daemon (the engine `client` reaches) under a non-blocking Redis lock keyed by its ID."""

    client: docker.DockerClient
    redis: redis.Redis
    settings: Settings

    def sweep(self, max_age_hours: float, worker: str | None = None, *, predecessor: bool = False) -> dict[str, Any]:
        """Remove leftovers older than the age; skip if another sweep of this daemon holds the lock.

        With predecessor=True (at worker start) the resources a crashed worker of the same name left are
        removed too, whatever their age: nothing of this worker runs yet, so all of them are orphans.
        """
        with isolation.translate_errors("read the daemon's ID"):
            daemon = str(self.client.info()["ID"])
        lock = self.redis.lock(keys.SWEEP_LOCK(daemon), timeout=900, blocking=False)
        if not lock.acquire(blocking=False):
            logger.info("sweep skipped daemon=%s: another sweep of this daemon is running", daemon)
            return {"daemon": daemon, "worker": worker, "skipped": "another sweep of this daemon is running"}
        prefix = self.settings.label_prefix
        try:
            report = isolation.cleanup_orphaned_volumes(max_age_hours, self.client, label_prefix=prefix)
            result: dict[str, Any] = {"daemon": daemon, "worker": worker, **report.as_dict()}
            if recorder := metrics():
                recorder.sweep_removed.inc(len(report.removed))
            if predecessor and worker:
                result["predecessor"] = isolation.remove_labelled(
                    {Label.WORKER: worker}, self.client, label_prefix=prefix
                ).as_dict()
            if recorder := metrics():
                recorder.sweep_last_success.set_to_current_time()
        finally:
            release_lock(lock)
        logger.info("sweep daemon=%s worker=%s report=%s", daemon, worker, result)
        return result


@celeryd_after_setup.connect
def _sweep_at_start(sender: str | None = None, **_: Any) -> None:
    """Before the worker's pool and consumer start, remove what a crashed predecessor left on its daemon (a worker
    that delivers webhooks alone has no daemon)."""
    if role.delivers_only(role.consumed(app, str(sender))):
        return
    settings = app.settings
    try:
        # A client of its own, closed here: this runs in the main process, whose pool forks afterwards.
        with closing(isolation.connect(None)) as client, redis.Redis.from_url(settings.broker) as conn:
            Sweeper(client, conn, settings).sweep(settings.sweep_max_age_hours, sender, predecessor=True)
    except (isolation.IsolationError, redis.RedisError) as exc:
        logger.warning("start-up sweep failed (the scheduled sweep will retry): %s", exc)
