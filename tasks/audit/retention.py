"""Deleting audit segments (and their target lists) older than the audit's retention."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from tasks.artifacts import ObjectStore
from tasks.audit.layout import PREFIX, parse

logger = logging.getLogger(__name__)


def sweep_expired(store: ObjectStore, now: datetime, retention_days: int) -> int:
    """Delete every audit object whose period started more than `retention_days` before `now`; return how many."""
    cutoff = (now - timedelta(days=retention_days)).timestamp()
    expired = [info.key for info in store.list(PREFIX) if (found := parse(info.key)) and found[0].period < cutoff]
    # Heads last: a sweep that dies midway leaves heads whose events are gone, which verify reports, not hides.
    expired.sort(key=lambda k: k.endswith(".idx"))
    deleted = store.delete(expired)
    logger.info("audit sweep removed objects=%d older than %d days", deleted, retention_days)
    return deleted
