"""Per-host overrides in Redis, changed at run time: one hash that every admission's fair-share script reads.

`toolrunner:fs:hosts` maps each canonical network (`198.51.100.7/32`, `2001:db8::/64`) to its override as
compact JSON (tasks.hosts.override.encode). The operators own the key (`toolrunner hosts set/unset`); nothing
else writes or deletes it, and it never expires.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import redis

from tasks.hosts.override import Override, canonical, decode, encode
from tasks.scope.host import Span
from tasks.scope.store import actor

logger = logging.getLogger(__name__)

KEY = "toolrunner:fs:hosts"  # under the fair-share prefix: the scripts build it as P .. 'hosts'


def put(client: redis.Redis, override: Override) -> None:
    """Store an override, replacing both limits of any earlier one for the same network."""
    client.hset(KEY, override.host, encode(override))
    _event("set", override.host, max_running=override.max_running, max_rps=override.max_rps)


def remove(client: redis.Redis, span: Span) -> bool:
    """Drop the override of exactly this network; True if there was one."""
    field = canonical(span)
    removed = bool(client.hdel(KEY, field))
    _event("unset", field, removed=int(removed))
    return removed


def overrides(client: redis.Redis) -> list[Override]:
    """Every stored override, ordered by IP version, first address and prefix length; unreadable ones left out."""
    return sorted(_read(client.hgetall(KEY)), key=lambda o: (o.span[0], o.span[1], o.prefix))


def _read(raw: Mapping[bytes | str, bytes | str]) -> list[Override]:
    found = []
    for field, value in raw.items():
        try:
            found.append(decode(_text(field), _text(value)))
        except (ValueError, KeyError, TypeError) as exc:  # written by hand: say so, and skip it
            logger.warning("hosts: the stored override %r is left out: %s", _text(field), exc)
    return found


def _event(action: str, host: str, **detail: object) -> None:
    extra = " ".join(f"{k}={v}" for k, v in detail.items())
    logger.info("hosts event=%s host=%s %s by=%s", action, host, extra, actor())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
