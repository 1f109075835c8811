"""Scope: which targets each tenant may scan, stored in Redis and checked by the worker before anything exists.

From the API tier or a runbook (the same as `toolrunner scope add/remove/show/clear --tenant T`):

    import tasks.scope
    tasks.scope.add("acme", ["192.0.2.0/24", "example.com", "=www.example.org"])
    tasks.scope.add("acme", ["192.0.2.5"], exclude=True)        # its production database stays out
    tasks.scope.show("acme")

Each call uses TOOLRUNNER_BROKER_URL's Redis unless given `connection=`; a Redis ACL lets the API tier read
scope keys and not write them (docs/redis-acl.md).
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from config import Settings, load_settings
from tasks.scope import store
from tasks.scope.store import Line

__all__ = ["Line", "add", "clear", "remove", "show"]


def add(
    tenant: str, entries: Iterable[str], *, exclude: bool = False, expires_in_days: float | None = None,
    connection: redis.Redis | None = None, settings: Settings | None = None,
) -> list[str]:  # fmt: skip
    """Add entries (or, with exclude, exclusions) to a tenant's scope; the canonical entries added.

    Raises ScopeEntryError naming every refused entry (public suffixes, wildcards, too-wide networks), and
    then adds none of them.
    """
    settings = settings or load_settings()
    canonical = store.canonical(
        entries, max_prefix_v4=settings.scope_max_prefix_v4, max_prefix_v6=settings.scope_max_prefix_v6
    )
    store.add(_client(connection, settings), tenant, canonical, exclude=exclude, expires_in_days=expires_in_days)
    return [str(entry) for entry in canonical]


def remove(
    tenant: str, entries: Iterable[str], *, exclude: bool = False, connection: redis.Redis | None = None,
    settings: Settings | None = None,
) -> int:  # fmt: skip
    """Remove entries (or exclusions) from a tenant's scope, written in any form they were added in; how many."""
    # Removing only narrows: an entry stored before the public suffix list refused it can still be removed.
    canonical = store.canonical(entries, max_prefix_v4=0, max_prefix_v6=0, unsafe_names=True)
    return store.remove(_client(connection, settings), tenant, canonical, exclude=exclude)


def show(tenant: str, *, connection: redis.Redis | None = None, settings: Settings | None = None) -> list[Line]:
    """The tenant's current entries and exclusions."""
    return store.show(_client(connection, settings), tenant)


def clear(tenant: str, *, connection: redis.Redis | None = None, settings: Settings | None = None) -> int:
    """Drop a tenant's whole scope; how many entries it had."""
    return store.clear(_client(connection, settings), tenant)


def _client(connection: redis.Redis | None, settings: Settings | None) -> redis.Redis:
    return connection if connection is not None else redis.Redis.from_url((settings or load_settings()).broker)
