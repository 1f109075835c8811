"""Deleting what has expired, and everything of one tenant."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from tasks.artifacts.errors import ArtifactIntegrityError
from tasks.artifacts.index import TaskIndex
from tasks.artifacts.layout import INDEX, TENANTS, task_id_of, tenant_prefix
from tasks.artifacts.store import ObjectStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionReport:
    """What a sweep or a purge removed."""

    tasks: int
    objects: int


def sweep_expired(store: ObjectStore, now: datetime, retention: timedelta) -> RetentionReport:
    """Delete tasks whose index entry has expired, then unindexed objects older than the retention."""
    live: set[str] = set()
    tasks = objects = 0
    for info in list(store.list(INDEX)):
        index = _load(store, info.key)
        if index is None or index.expires > now:
            if index is not None:
                live.add(index.location.task_id)
            continue
        objects += _delete_task(store, index, info.key)
        tasks += 1
    # Objects no index names (a run that died before its first artifact closed, temp files) go by age.
    cutoff = now - retention
    stale = [i.key for i in store.list(TENANTS) if i.modified < cutoff and task_id_of(i.key) not in live]
    objects += store.delete(stale)
    logger.info("artifact sweep removed tasks=%d objects=%d", tasks, objects)
    return RetentionReport(tasks, objects)


def purge_tenant(store: ObjectStore, tenant: str) -> RetentionReport:
    """Delete every artifact and index entry of one tenant (a tenant leaving the service)."""
    prefix = tenant_prefix(tenant)
    tasks = 0
    for info in list(store.list(INDEX)):
        index = _load(store, info.key)
        if index is not None and index.location.tenant == tenant:
            store.delete([info.key])
            tasks += 1
    objects = store.delete([i.key for i in store.list(prefix)])
    logger.info("artifacts purged tenant=%s tasks=%d objects=%d", tenant, tasks, objects)
    return RetentionReport(tasks, objects)


def _delete_task(store: ObjectStore, index: TaskIndex, index_key: str) -> int:
    count = store.delete([i.key for i in store.list(index.location.prefix)])
    # The index entry goes last: a sweep that dies midway finds the task again next time.
    store.delete([index_key])
    return count


def _load(store: ObjectStore, key: str) -> TaskIndex | None:
    try:
        return TaskIndex.from_json(store.get(key))
    except ArtifactIntegrityError as exc:
        logger.warning("unreadable artifact index entry %s left in place: %s", key, exc)
        return None
