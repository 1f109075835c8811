"""The deadline reaper of each worker: kills and removes its daemon's containers (and volumes) past their deadline.

A thread of the worker's main process, started when the worker is ready and run at once, then every
`reaper_interval_seconds`. Not a beat task: beat may be down, and a task would wait behind the runs filling the
pool, while an orphaned scanner must be stopped whatever the worker is busy with. Each worker reaps its own
daemon (workers may own different daemons); two reapers of one daemon are harmless (removal is idempotent).
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from celery.signals import worker_ready, worker_shutdown

import isolation
from config import Settings
from tasks.worker import role
from tasks.worker.app import app
from tasks.worker.metrics import metrics

logger = logging.getLogger(__name__)

_stop = threading.Event()


@dataclass
class LastPass:
    """This worker's last reaper pass that reached its daemon: when, and how many containers were past deadline."""

    at: float | None = None
    past_deadline: int = 0


last_pass = LastPass()  # read by the worker's record (diskguard.py) for `toolrunner status`


def reap_once(settings: Settings) -> isolation.SweepReport | None:
    """One pass over this worker's daemon with a client of its own; a failure is logged, never raised."""
    try:
        with closing(isolation.connect(None)) as client:
            report = isolation.reap_past_deadline(client, label_prefix=settings.label_prefix)
    except isolation.IsolationError as exc:
        logger.warning("deadline reaper pass failed (next pass in %ss): %s", settings.reaper_interval_seconds, exc)
        return None
    last_pass.at, last_pass.past_deadline = time.time(), len(report.removed_containers)
    if recorder := metrics():
        recorder.reaper_last_run.set_to_current_time()
    return report


def _loop(settings: Settings, stop: threading.Event) -> None:
    while True:
        reap_once(settings)
        if stop.wait(settings.reaper_interval_seconds):
            return


@worker_ready.connect
def _start(sender: Any = None, **_: Any) -> None:
    """Start the reaper once the pool has forked its children (no thread is copied into them); none in a worker
    that delivers webhooks alone (it starts no tool)."""
    if role.delivers_only(role.consumed(app, str(getattr(sender, "hostname", "")))):
        return
    _stop.clear()
    thread = threading.Thread(target=_loop, args=(app.settings, _stop), daemon=True, name="deadline-reaper")
    thread.start()


@worker_shutdown.connect
def _halt(**_: Any) -> None:
    _stop.set()
