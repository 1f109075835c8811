"""What Flower and other event monitors see of a run: its arguments redacted, and a cancel as REVOKED.

Flower's task list is built from events, not from the result backend. Two facts of Celery 5.7's event state
(celery/events/state.py) shape this module: a task event's `args`/`kwargs` are the message's `argsrepr`/
`kwargsrepr` headers (task-sent, task-received), and a plain `task-revoked` after a custom state such as
`PROGRESS` is taken as an earlier event (custom states rank above REVOKED) and leaves the task PROGRESS; an event
field named `state` is copied onto the task either way, so the revoked event below carries `state="REVOKED"`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import kombu.exceptions
import redis
from celery import Celery, states
from celery.worker.request import Request

import isolation
from tasks.worker.delivery import bind_run

logger = logging.getLogger(__name__)

IDENTITY = ("tool", "tenant_id", "run_id")
REDACTED = "<redacted>"


def redacted_reprs(bound: Mapping[str, Any]) -> tuple[str, str]:
    """The `argsrepr` and `kwargsrepr` of a run message: its tool, tenant and run id; every other argument
    (params, input files, anything unexpected) by name only."""
    shown = {key: _identifier(bound.get(key)) for key in IDENTITY}
    hidden = {key: REDACTED for key in sorted(bound) if key not in IDENTITY}
    return repr(shown), repr(hidden)


def _identifier(value: object) -> str | None:
    if value is None:
        return None
    try:
        return isolation.validate_identifier("id", value)
    except isolation.InvalidIdentifierError:  # not a valid id (the worker fails the run): shown as nothing
        return REDACTED


def redact_options(task: str, args: Any, kwargs: Any, options: dict[str, Any]) -> None:
    """Set the redacted argsrepr/kwargsrepr on the publish options of a run message; others are left alone."""
    bound = bind_run(task, args or (), kwargs or {})
    if bound is not None:
        options["argsrepr"], options["kwargsrepr"] = redacted_reprs(bound)


class RedactedRequest(Request):  # type: ignore[misc]
    """A run message as the worker holds it, shown redacted in its task-received event, `inspect active` and its
    log lines whatever its producer put in argsrepr (a producer that is not this app, or an older release)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bound = bind_run(self._type, *self._call_args())
        if bound is not None:
            self._argsrepr, self._kwargsrepr = redacted_reprs(bound)

    def _call_args(self) -> tuple[Any, Any]:
        body = self._payload
        args, kwargs = (body[0], body[1]) if isinstance(body, list | tuple) and len(body) >= 2 else ((), {})
        return (args if isinstance(args, list | tuple) else ()), (kwargs if isinstance(kwargs, dict) else {})


def revoked_fields(reason: str) -> dict[str, Any]:
    """The fields of the task-revoked event of a cancelled run: Celery's own three, the state Flower must show
    after a PROGRESS, and the reason as the task's result."""
    return {"terminated": False, "signum": None, "expired": False, "state": states.REVOKED, "result": reason}


def announce_revoked(celery_app: Celery, task_id: str, hostname: str | None, reason: str) -> None:
    """Send the task-revoked event of a cancelled run, as sent by `hostname` (the worker that held it, so Flower
    lists no extra worker; None: this process). Best effort: the result backend already says REVOKED."""
    announce_all_revoked(celery_app, [(task_id, hostname)], reason)


def announce_all_revoked(celery_app: Celery, runs: Iterable[tuple[str, str | None]], reason: str) -> None:
    """announce_revoked for many (task id, hostname) pairs: one event dispatcher per hostname, not per run."""
    by_host: dict[str | None, list[str]] = {}
    for task_id, hostname in runs:
        by_host.setdefault(hostname, []).append(task_id)
    for hostname, task_ids in by_host.items():
        try:
            with celery_app.events.default_dispatcher(hostname=hostname) as dispatcher:
                for task_id in task_ids:
                    dispatcher.send("task-revoked", uuid=task_id, **revoked_fields(reason))
        except (redis.RedisError, OSError, kombu.exceptions.OperationalError) as exc:
            logger.warning("task-revoked events not sent for %d tasks: %s", len(task_ids), exc)
