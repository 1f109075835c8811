"""Host politeness overrides: an operator's per-host (or per-network) caps on runs at once and requests per second.

From a runbook (the same as `toolrunner hosts set/show/unset --host H`):

    import tasks.hosts
    tasks.hosts.set("198.51.100.7", max_running=1, max_rps=5)   # '198.51.100.7/32'
    tasks.hosts.set("2001:db8::/64", max_rps=200)                # max running stays the default
    tasks.hosts.show("198.51.100.7")                             # the overrides that apply to it
    tasks.hosts.limits("198.51.100.7")                           # what a run touching it gets now

A host is an IP address; a network in CIDR covers each of its addresses. Which override gives a limit is
`effective`'s rule (docs/politeness.md). Each call uses TOOLRUNNER_BROKER_URL's Redis unless given `connection=`.
"""

from __future__ import annotations

import redis

from config import Settings, load_settings
from tasks.hosts import store
from tasks.hosts.override import Override, canonical, checked, read
from tasks.hosts.rule import Limits, effective
from tasks.scope.host import hex_span

__all__ = ["Limits", "Override", "canonical", "effective", "hex_span", "limits", "read", "set", "show", "unset"]


def set(
    host: str, *, max_running: int | None = None, max_rps: float | None = None,
    connection: redis.Redis | None = None, settings: Settings | None = None,
) -> str:  # fmt: skip
    """Override the limits of a host or network; the canonical network. A second `set` replaces both limits."""
    span = read(host)
    running, rps = checked(max_running, max_rps)
    override = Override(canonical(span), span, running, rps)
    store.put(_client(connection, settings), override)
    return override.host


def show(
    host: str | None = None, *, connection: redis.Redis | None = None, settings: Settings | None = None
) -> list[Override]:
    """Every override, or those that apply to a host or network: the ones covering it and the narrower inside it."""
    found = store.overrides(_client(connection, settings))
    if host is None:
        return found
    version, first, last = read(host)
    return [o for o in found if o.span[0] == version and o.span[1] <= last and first <= o.span[2]]


def unset(host: str, *, connection: redis.Redis | None = None, settings: Settings | None = None) -> bool:
    """Drop the override of exactly this host or network (written in any form); True if there was one."""
    return store.remove(_client(connection, settings), read(host))


def limits(host: str, *, connection: redis.Redis | None = None, settings: Settings | None = None) -> Limits:
    """The limits a run touching this host (or keyed by this block) gets now, with the settings' defaults."""
    settings = settings or load_settings()
    found = show(host, connection=connection, settings=settings)
    return effective(found, read(host), settings.host_max_running, settings.host_max_rps)


def _client(connection: redis.Redis | None, settings: Settings | None) -> redis.Redis:
    return connection if connection is not None else redis.Redis.from_url((settings or load_settings()).broker)
