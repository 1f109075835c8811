"""Finding who scanned an address or name, and exporting events as JSON lines, from the segments' indexes.

`search` reads every head in the time range (small objects) and opens only the segments whose index may hold the
target (for the tenant, when given); `export` streams every event in time order. Both drop an event seen twice (a
replayed copy, named in its segment's head).
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from tasks.artifacts import ArtifactNotFoundError, ObjectStore
from tasks.audit import index
from tasks.audit.errors import AuditIntegrityError
from tasks.audit.event import AuditEvent
from tasks.audit.key import AuditKey
from tasks.audit.layout import INDEX, PREFIX, Place, parse
from tasks.audit.segment import Sealed, read_head, read_lines, read_targets

# A segment's events lie in its period, except late ones (replays, a clock jump): search's `until` looks one day on.
_LATE_SECONDS = 86400


@dataclass
class Found:
    """What a search found, and how much it read to find it."""

    events: list[AuditEvent] = field(default_factory=list)
    segments: int = 0
    opened: int = 0
    unreadable: list[str] = field(default_factory=list)  # segments that failed authentication: run verify


def search(
    store: ObjectStore,
    key: AuditKey,
    target: str,
    since: datetime | None = None,
    until: datetime | None = None,
    tenant: str | None = None,
) -> Found:
    """Events whose targets hold `target` (an address, also inside a scanned network, or a name) or whose names
    resolved to it, oldest first."""
    query = index.read_target(target.strip())
    found = Found()
    seen: dict[str, AuditEvent] = {}
    for place, sealed in _heads(store, key, since, until, found.unreadable):
        found.segments += 1
        if not sealed.index.may_match(query, tenant):
            continue
        found.opened += 1
        try:
            events = list(_events(store, key, place))
        except (AuditIntegrityError, ArtifactNotFoundError) as exc:
            found.unreadable.append(str(exc))  # an altered segment must not hide the rest of the answer
            continue
        for event in events:
            if _wanted(event, since, until, tenant) and _matches(store, key, event, query):
                seen.setdefault(event.id, event)
    found.events = sorted(seen.values(), key=lambda e: (e.time, e.id))
    return found


def export(
    store: ObjectStore, key: AuditKey, since: datetime | None = None, until: datetime | None = None
) -> Iterator[str]:
    """Every event from `since` to `until` as one JSON line each, in time order, each event once."""
    unreadable: list[str] = []
    heads = list(_heads(store, key, since, until, unreadable))
    if unreadable:
        raise AuditIntegrityError(f"{len(unreadable)} segment heads fail authentication (run verify): {unreadable[0]}")
    replayed = {event_id for _, sealed in heads for event_id in sealed.head.replayed}
    emitted: set[str] = set()
    pending: list[tuple[datetime, str, AuditEvent]] = []
    for place, _sealed in sorted(heads, key=lambda item: item[0].period):
        # Every later segment's events are at or after its period: what is older than it is in order now.
        yield from _drain(pending, place.period, replayed, emitted)
        for event in _events(store, key, place):
            if _wanted(event, since, until, None):
                heapq.heappush(pending, (event.time, event.id, event))
    yield from _drain(pending, None, replayed, emitted)


def _drain(
    pending: list[tuple[datetime, str, AuditEvent]], before: int | None, replayed: set[str], emitted: set[str]
) -> Iterator[str]:
    while pending and (before is None or pending[0][0].timestamp() < before):
        _, event_id, event = heapq.heappop(pending)
        if event_id in replayed:
            if event_id in emitted:
                continue
            emitted.add(event_id)
        yield json.dumps(event.as_dict(), sort_keys=True)


def _heads(
    store: ObjectStore, key: AuditKey, since: datetime | None, until: datetime | None, unreadable: list[str]
) -> Iterator[tuple[Place, Sealed]]:
    start = since.timestamp() if since else None
    end = until.timestamp() + _LATE_SECONDS if until else None
    places = [p for p in (parse(i.key) for i in store.list(PREFIX) if i.key.endswith(INDEX)) if p is not None]
    for place, _ in sorted(places, key=lambda item: (item[0].period, item[0].base)):
        if end is not None and place.period > end:
            continue
        try:
            sealed = read_head(store, key, place)
        except (AuditIntegrityError, ArtifactNotFoundError, ValueError, KeyError, TypeError) as exc:
            unreadable.append(str(exc))
            continue
        if start is not None and place.period + max(sealed.head.seconds, 1) <= start:
            continue
        yield place, sealed


def _events(store: ObjectStore, key: AuditKey, place: Place) -> Iterator[AuditEvent]:
    for line in read_lines(store, key, place):
        yield AuditEvent.from_json(line)


def _wanted(event: AuditEvent, since: datetime | None, until: datetime | None, tenant: str | None) -> bool:
    if tenant is not None and event.tenant != tenant:
        return False
    return (since is None or event.time >= since) and (until is None or event.time <= until)


def _matches(store: ObjectStore, key: AuditKey, event: AuditEvent, query: index.Query) -> bool:
    if any(index.overlaps(query, index.read_target(t)) for t in read_targets(store, key, event)):
        return True
    for name, addresses in event.resolved.items():
        if index.overlaps(query, index.read_target(name)):
            return True
        if any(index.overlaps(query, index.read_target(a)) for a in addresses):
            return True
    return False
