"""Tenants' scopes in Redis, changed at run time: one hash per tenant, read by every admission through a cache.

`toolrunner:scope:tenant:<tenant>` holds `+<entry>` (included) and `-<entry>` (excluded) fields whose value is
the entry's expiry (Unix seconds, 0 for none), and `version`, a random token every change replaces: a worker
keeps each tenant's compiled scope until the token (one HGET per admission) or an expiry says otherwise.
The operators own the key (`toolrunner scope add/remove/clear`); nothing else writes or deletes it.
"""

from __future__ import annotations

import getpass
import logging
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis

import isolation
from tasks.errors import ScopeEntryError
from tasks.scope.entry import Entry, parse
from tasks.scope.matcher import Scope

logger = logging.getLogger(__name__)

KEY_PATTERN = "toolrunner:scope:tenant:{}"
VERSION = "version"
INCLUDE, EXCLUDE = "+", "-"
DAY = 86400


@dataclass(frozen=True)
class Line:
    """One stored entry: what it is, whether it excludes, and when it expires (None: never)."""

    entry: str
    exclude: bool
    expires_at: float | None


def key(tenant: str) -> str:
    """The tenant's scope key (the tenant id checked as every run's is)."""
    return KEY_PATTERN.format(isolation.validate_identifier("tenant_id", tenant))


def canonical(
    entries: Iterable[str], *, max_prefix_v4: int, max_prefix_v6: int, unsafe_names: bool = False
) -> list[Entry]:
    """Every entry canonicalised; all refusals at once in one ScopeEntryError, so nothing is half added."""
    parsed, refused = [], []
    for text in entries:
        try:
            parsed.append(
                parse(text, max_prefix_v4=max_prefix_v4, max_prefix_v6=max_prefix_v6, unsafe_names=unsafe_names)
            )
        except ScopeEntryError as exc:
            refused.append(str(exc))
    if refused:
        raise ScopeEntryError("; ".join(refused))
    if not parsed:
        raise ScopeEntryError("no entries given")
    return parsed


def actor() -> str:
    """Who changes a scope from this process, for its events: user@host."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def add(client: redis.Redis, tenant: str, entries: list[Entry], *, exclude: bool = False,
        expires_in_days: float | None = None) -> None:  # fmt: skip
    """Add canonical entries (or exclusions); the next admission on every worker uses them."""
    expires_at = int(time.time() + expires_in_days * DAY) if expires_in_days else 0
    mark = EXCLUDE if exclude else INCLUDE
    fields: dict[str, int] = {f"{mark}{entry}": expires_at for entry in entries}
    _write(client, tenant, "add", fields=fields, exclude=exclude, expires_at=expires_at or None)


def remove(client: redis.Redis, tenant: str, entries: list[Entry], *, exclude: bool = False) -> int:
    """Remove entries (or exclusions); how many there were."""
    mark = EXCLUDE if exclude else INCLUDE
    names = [f"{mark}{entry}" for entry in entries]
    with client.pipeline(transaction=True) as pipe:
        pipe.hdel(key(tenant), *names)
        pipe.hset(key(tenant), VERSION, uuid.uuid4().hex)
        removed = int(pipe.execute()[0])
    _event("remove", tenant, [str(e) for e in entries], exclude=exclude, removed=removed)
    return removed


def clear(client: redis.Redis, tenant: str) -> int:
    """Drop the tenant's whole scope (it may then scan nothing while scope is enforced); entries it had."""
    had = len(show(client, tenant))
    client.delete(key(tenant))
    _event("clear", tenant, [], removed=had)
    return had


def show(client: redis.Redis, tenant: str) -> list[Line]:
    """The tenant's entries, exclusions after inclusions, each sorted; expired ones are left out."""
    now = time.time()
    found = [line for line in _lines(client.hgetall(key(tenant))) if line.expires_at is None or line.expires_at > now]
    return sorted(found, key=lambda line: (line.exclude, line.entry))


def _write(client: redis.Redis, tenant: str, action: str, *, fields: dict[str, int], exclude: bool,
           expires_at: int | None) -> None:  # fmt: skip
    def prune_and_write(pipe: redis.client.Pipeline) -> None:
        # Under WATCH: an entry another operator re-adds between this read and the write makes Redis run it again,
        # so a fresh entry is never pruned as the expired one it replaced.
        now = time.time()
        expired = [f"{EXCLUDE if line.exclude else INCLUDE}{line.entry}" for line in _lines(pipe.hgetall(key(tenant)))
                   if line.expires_at is not None and line.expires_at <= now]  # fmt: skip
        pipe.multi()
        if expired:  # expired entries are pruned by the next change of the scope (reads already skip them)
            pipe.hdel(key(tenant), *expired)
        pipe.hset(key(tenant), mapping={**fields, VERSION: uuid.uuid4().hex})  # type: ignore[dict-item]

    client.transaction(prune_and_write, key(tenant))
    entries = [_text(name)[1:] for name in fields]
    _event(action, tenant, entries, exclude=exclude, expires_at=expires_at)


def _event(action: str, tenant: str, entries: list[str], **detail: object) -> None:
    extra = " ".join(f"{k}={v}" for k, v in detail.items())
    logger.info("scope event=%s tenant=%s entries=%s %s by=%s", action, tenant, ",".join(entries), extra, actor())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _lines(raw: Mapping[bytes | str, bytes | str]) -> list[Line]:
    lines = []
    for field, value in raw.items():
        name = _text(field)
        if name == VERSION or name[:1] not in (INCLUDE, EXCLUDE):
            continue
        expires = int(_text(value) or 0)
        lines.append(Line(name[1:], name[0] == EXCLUDE, float(expires) if expires else None))
    return lines


PARSED_KEPT = 200_000  # stored entries a worker keeps parsed (~40 MB at most); past it the memo starts over


class Scopes:
    """Tenants' compiled scopes for one worker process, kept until their version token or an expiry changes.

    Each stored entry's parsing is kept too, so a change of a few entries recompiles a large scope without parsing
    it all again. Parsing depends only on the text and the public suffix list, which changes only with a deploy,
    and so with a new process.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._cache: dict[str, tuple[str | None, float, Scope]] = {}
        self._parsed: dict[tuple[str, bool], Entry | ScopeEntryError] = {}

    def of(self, tenant: str) -> Scope:
        """The tenant's scope as Redis holds it now (one HGET when unchanged)."""
        version = self._client.hget(key(tenant), VERSION)
        cached = self._cache.get(tenant)
        if cached is not None and cached[0] == _version(version) and time.time() < cached[1]:
            return cached[2]
        raw = self._client.hgetall(key(tenant))
        lines = [line for line in _lines(raw) if line.expires_at is None or line.expires_at > time.time()]
        if len(self._parsed) > PARSED_KEPT:
            self._parsed.clear()
        scope = Scope.of(_entries(tenant, lines, self._parsed), _exclusions(lines, self._parsed))
        until = min((line.expires_at for line in lines if line.expires_at), default=float("inf"))
        self._cache[tenant] = (_version(next((v for f, v in raw.items() if _text(f) == VERSION), None)), until, scope)
        return scope


def _version(value: bytes | str | None) -> str | None:
    """A version token as text, whether the client decodes responses or not."""
    return None if value is None else _text(value)


def _entries(tenant: str, lines: list[Line], parsed: dict[tuple[str, bool], Entry | ScopeEntryError]) -> list[Entry]:
    """The stored inclusions, checked again: one a newer public suffix list refuses is left out (never widened)."""
    entries = []
    for line in lines:
        if not line.exclude:
            found = memoised(line.entry, False, parsed)
            if isinstance(found, ScopeEntryError):
                logger.warning("scope tenant=%s: the stored entry %r is left out: %s", tenant, line.entry, found)
            else:
                entries.append(found)
    return entries


def _exclusions(lines: list[Line], parsed: dict[tuple[str, bool], Entry | ScopeEntryError]) -> list[Entry]:
    """The stored exclusions, read as they were added (leaving one out would widen the scope)."""
    found = [memoised(line.entry, True, parsed) for line in lines if line.exclude]
    for item in found:
        if isinstance(item, ScopeEntryError):
            raise item
    return [item for item in found if isinstance(item, Entry)]


def memoised(text: str, unsafe: bool, memo: dict[tuple[str, bool], Entry | ScopeEntryError]) -> Entry | ScopeEntryError:
    """parse() of a stored entry, once per worker process: its result, or the refusal it raises."""
    if (text, unsafe) not in memo:
        try:
            memo[text, unsafe] = parse(text, max_prefix_v4=0, max_prefix_v6=0, unsafe_names=unsafe)
        except ScopeEntryError as exc:
            memo[text, unsafe] = exc
    return memo[text, unsafe]
