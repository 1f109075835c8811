"""The Celery configuration, built from Settings; producers, workers, beat and Flower all use it."""

from __future__ import annotations

from typing import Any

from config.settings import Settings


def celery_config(settings: Settings) -> dict[str, Any]:
    """Return the Celery settings mapping for app.conf.update()."""
    transport = {
        # Redis redelivers a message nobody acked within this many seconds; it must exceed the hard time
        # limit or a long run is started a second time while the first still runs.
        "visibility_timeout": settings.visibility_timeout,
        # Look for abandoned messages every unacked_restore_interval (10 s) rather than every 10th time:
        # one cheap ZRANGE per worker, and a killed worker's run resumes soon after its visibility ends.
        "unacked_restore_throttle": 1,
    }
    return {
        "broker_url": settings.broker,
        "result_backend": settings.backend,
        # JSON only: a pickle message from anyone who can write to Redis would be code execution.
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_serializer": "json",
        "result_serializer": "json",
        # Ack after the run, so a worker that dies mid-run leaves the message for another worker...
        "task_acks_late": True,
        # ...and also when the child was killed (SIGKILL, OOM); tasks cap their own redeliveries.
        "task_reject_on_worker_lost": True,
        # Long tasks: a worker reserves only what it runs, so idle workers can take the rest.
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.soft_time_limit,
        "task_time_limit": settings.hard_time_limit,
        "broker_transport_options": transport,
        "result_backend_transport_options": transport,
        # Measured with Celery/Kombu 5.7 and a Redis restart (tests/integration/test_faults.py): cancelling
        # the running tasks on connection loss marks them REVOKED and acks their messages once the broker
        # is back, so they are LOST. Runs go on instead; a second delivery of a running task's message
        # waits on the task's run lock (tasks/worker/delivery.py) and then returns the first one's stored result.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # Store a finished run's result even if Redis is away for a few minutes when it ends: up to 600 tries,
        # at most 1 s apart (full jitter, ~0.5 s on average: about 5 minutes). Not Celery's 10 s ceiling: a
        # progress report (each second while a tool runs) would then sleep up to 10 s after Redis is back,
        # the run loop with it, and a short tool would hit its timeout (seen in test_faults' Redis restart).
        "result_backend_always_retry": True,
        "result_backend_max_retries": 600,
        "result_backend_max_sleep_between_retries_ms": 1000,
        # A redelivered message whose result is already SUCCESS is not run again.
        "worker_deduplicate_successful_tasks": True,
        # No STARTED state: Celery writes it before the task body, so before admission and the identity check,
        # and a copy that is then dropped (an id of another run, a run that already ended REVOKED or FAILED,
        # a second copy of a parked run) would overwrite that run's state and leave it STARTED. A run writes
        # its own PROGRESS once admitted (or parked); Flower still shows task-started events.
        "task_track_started": False,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "result_expires": settings.result_expires_seconds,
        # Off: with it on, every state write (each progress tick, about once a second) stores the task's
        # arguments again, input files included (up to max_input_bytes); nothing here reads them back, and
        # the result names its tool, tenant and run itself.
        "result_extended": False,
        "broker_connection_retry_on_startup": True,
        # Each worker also consumes a queue of its own, so the sweep can reach every worker's daemon.
        "worker_direct": True,
    }
