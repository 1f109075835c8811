"""Scope at worker start: the operator's policy read (a malformed setting stops the worker, naming it), and
TOOLRUNNER_SCOPE=off announced loudly, since it lets any tenant's runs scan anything the fence lets out."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import celeryd_after_setup

from config import Settings
from tasks.scope.check import Checker
from tasks.scope.policy import checker
from tasks.worker.app import app

logger = logging.getLogger(__name__)


def announce(settings: Settings) -> Checker:
    """The checker the settings describe (ValueError naming a malformed setting), its mode logged."""
    built = checker(settings)
    if settings.scope == "off":
        logger.warning(
            "TOOLRUNNER_SCOPE=off: runs are NOT checked against their tenant's scope; only the deny list and "
            "private ranges hold. Use it for single-tenant installations only (docs/scope.md)."
        )
    else:
        logger.info(
            "scope enforced: runs scan only their tenant's scope (toolrunner scope); private ranges allowed: %s",
            ", ".join(settings.scope_allow_private) or "none",
        )
    return built


@celeryd_after_setup.connect
def _checked_at_start(sender: str | None = None, instance: Any = None, **_: Any) -> None:
    """Fail closed before the worker takes a run: with a malformed scope setting it would fail every run it took
    (the queue drained into failures), so it does not start."""
    try:
        app.scope_checker = announce(app.settings)  # built in the main process, inherited by the pool
    except ValueError as exc:
        # SystemExit, not an exception: Celery logs and swallows exceptions raised by signal receivers.
        raise SystemExit(f"toolrunner: refusing to start: {exc}") from exc
