"""A deploy (SIGTERM to the worker): its running runs stop cleanly and their messages go back on the queue.

The main process marks its worker as draining in Redis when Celery's warm shutdown starts; each run's watcher
(tasks/worker/control.py) sees the mark within a second, the run kills its tool container and removes its
volumes, and its message is rejected with requeue (kombu puts it back at the head of the queue), uncounted as
a redelivery. Warm shutdown then finds nothing running and exits within seconds, well inside the grace period.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery.signals import celeryd_after_setup, worker_shutting_down

from tasks.worker import keys
from tasks.worker.app import app

logger = logging.getLogger(__name__)

# Long enough for any run to notice; short enough that a worker restarting under the same name after a
# crash mid-shutdown is not taken for draining for long (its start-up clears the mark anyway).
DRAINING_TTL = 600


@worker_shutting_down.connect
def _mark_draining(sender: str | None = None, how: str | None = None, **_: Any) -> None:
    """Tell this worker's runs to stop and put themselves back on the queue."""
    if not sender:
        return
    try:
        # A client of its own: this runs in a signal handler, maybe while the main thread's client is mid-command.
        with redis.Redis.from_url(app.settings.broker, socket_timeout=5) as conn:
            conn.set(keys.DRAINING(sender), how or "shutdown", ex=DRAINING_TTL)
        logger.warning("%s shutdown of %s: running runs are put back on the queue", how, sender)
    except redis.RedisError as exc:  # the runs then finish or die with the worker; redelivery covers them
        logger.warning("could not mark %s as draining: %s", sender, exc)


@celeryd_after_setup.connect
def _clear_draining(sender: str | None = None, **_: Any) -> None:
    """A worker starting under a name that was draining is not draining."""
    if not sender:
        return
    try:
        with redis.Redis.from_url(app.settings.broker, socket_timeout=5) as conn:
            conn.delete(keys.DRAINING(sender))
    except redis.RedisError as exc:
        logger.warning("could not clear the draining mark of %s: %s", sender, exc)
