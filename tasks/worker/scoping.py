"""Scope at worker start: the operator's policy read (a malformed setting stops the worker, naming it), and
TOOLRUNNER_SCOPE=off announced loudly, since it lets any tenant's runs scan anything the fence lets out."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_init

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


@worker_init.connect
def _announce(**_: Any) -> None:
    announce(app.settings)
