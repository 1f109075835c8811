"""Checking the stored audit: every object authentic, every chain whole, every stream's end explained.

Threat model: someone who can change, delete, copy or move stored objects but does not hold the audit key. What a
segment says is checked against its head (count, first and last hash, digests, each line's link to the one before),
the head against its MAC, and each head's link against the previous segment of its stream; a stream that is not
closed must have a segment for the last complete period. See docs/audit.md for what this does not prove.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tasks.artifacts import ArtifactNotFoundError, ObjectStore
from tasks.audit import index
from tasks.audit.errors import AuditIntegrityError
from tasks.audit.event import AuditEvent, event_hash
from tasks.audit.key import AuditKey
from tasks.audit.layout import INDEX, PREFIX, SEGMENT, Place, parse
from tasks.audit.segment import Sealed, read_head, read_lines, read_targets

DEFAULT_RETENTION_DAYS = 400
_GRACE_SECONDS = 60  # a live writer stores a period's segment a moment after it ends


@dataclass
class Report:
    """What verify found: problems (any fails the check), notes (downtime, expiry) and what it read."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    segments: int = 0
    events: int = 0
    streams: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing was found wrong."""
        return not self.problems


def verify(
    store: ObjectStore,
    key: AuditKey,
    since: datetime | None = None,
    *,
    now: datetime | None = None,
    retention_days: int = DEFAULT_RETENTION_DAYS,
) -> Report:
    """Check every segment from `since` (all of them when None) and every stream's chain and end."""
    report = Report()
    moment = (now or datetime.now(UTC)).timestamp()
    expired_before = moment - retention_days * 86400
    start = since.timestamp() if since else None
    for stream, places in _streams(store, report):
        report.streams += 1
        heads = _heads(store, key, places, report)
        for place, sealed in heads:
            if start is None or place.period + sealed.head.seconds >= start:
                _check_segment(store, key, place, sealed, report)
        if heads and heads[0][1].head.oneshot:
            _check_forks(stream, heads, report, expired_before)
        else:
            _check_cadence(stream, heads, report, expired_before, moment)
    return report


def _streams(store: ObjectStore, report: Report) -> Iterator[tuple[str, list[Place]]]:
    """Each stream's segment places in period order; a `.seg` or `.idx` without its sibling is a problem."""
    found: dict[str, dict[str, tuple[Place, set[str]]]] = {}
    for info in store.list(PREFIX):
        parsed = parse(info.key)
        if parsed is None:
            continue
        place, ext = parsed
        found.setdefault(place.stream, {}).setdefault(place.base, (place, set()))[1].add(ext)
    for stream in sorted(found):
        places = []
        for base, (place, exts) in sorted(found[stream].items(), key=lambda item: (item[1][0].period, item[0])):
            if INDEX not in exts:
                report.problems.append(f"{base}: the segment has no head ({INDEX} removed or never completed)")
            elif SEGMENT not in exts:
                report.problems.append(f"{base}: the segment's events ({SEGMENT}) are missing")
            else:
                places.append(place)
        yield stream, places


def _heads(store: ObjectStore, key: AuditKey, places: list[Place], report: Report) -> list[tuple[Place, Sealed]]:
    heads = []
    for place in places:
        try:
            heads.append((place, read_head(store, key, place)))
        except (AuditIntegrityError, ArtifactNotFoundError, ValueError, KeyError, TypeError) as exc:
            report.problems.append(f"{place.index}: unreadable head: {exc}")
    return heads


def _check_segment(store: ObjectStore, key: AuditKey, place: Place, sealed: Sealed, report: Report) -> None:
    report.segments += 1
    try:
        lines = read_lines(store, key, place)
        problem = _content_problem(store, key, sealed, lines)
    except (AuditIntegrityError, ArtifactNotFoundError, ValueError, KeyError, TypeError) as exc:
        problem = str(exc)
    else:
        report.events += len(lines)
    if problem:
        report.problems.append(f"{place.segment}: {problem}")


def _content_problem(store: ObjectStore, key: AuditKey, sealed: Sealed, lines: list[bytes]) -> str | None:
    head = sealed.head
    if len(lines) != head.count:
        return f"holds {len(lines)} events, its head says {head.count} (events removed or added)"
    prev = ""
    events = []
    for number, line in enumerate(lines):
        event = AuditEvent.from_json(line)
        if event.prev_hash != prev:
            return f"event {number} ({event.id}) does not follow the one before it (removed or reordered events)"
        prev = event_hash(line)
        events.append(event)
    if lines and (event_hash(lines[0]), prev) != (head.first, head.last):
        return "its first or last event is not the one its head names"
    if hashlib.sha256(b"".join(line + b"\n" for line in lines)).hexdigest() != head.events_digest:
        return "its events do not match the digest in its head"
    return _index_problem(store, key, sealed, events) or _time_problem(sealed, events)


def _index_problem(store: ObjectStore, key: AuditKey, sealed: Sealed, events: list[AuditEvent]) -> str | None:
    rebuilt = index.build((e.tenant, read_targets(store, key, e), e.resolved) for e in events)
    if rebuilt.digest() != sealed.head.index_digest or rebuilt != sealed.index:
        return "its search index does not match its events"
    return None


def _time_problem(sealed: Sealed, events: list[AuditEvent]) -> str | None:
    head = sealed.head
    if head.oneshot:
        return None
    replayed = set(head.replayed)
    for event in events:
        early = event.timestamp < head.period and event.id not in replayed
        if early or event.timestamp >= head.period + head.seconds + _GRACE_SECONDS:
            return f"event {event.id} at {event.time.isoformat()} lies outside the segment's period"
    return None


def _check_cadence(
    stream: str, heads: list[tuple[Place, Sealed]], report: Report, expired_before: float, now: float
) -> None:
    before: Sealed | None = None
    for place, sealed in heads:
        problem = _link_problem(before, sealed, expired_before)
        if problem:
            report.problems.append(f"{place.base}: {problem}")
        elif before is not None and sealed.head.period > before.head.period + before.head.seconds:
            gap = f"{_when(before.head.period + before.head.seconds)} to {_when(sealed.head.period)}"
            report.notes.append(f"{stream}: no writer from {gap} (the chain links across it: nothing was removed)")
        before = sealed
    if before is not None and not before.head.closed:
        due = before.head.period + 2 * before.head.seconds + _GRACE_SECONDS
        if due < now:
            report.problems.append(
                f"{stream}: ends with {_when(before.head.period)}, not closed, and nothing after it: its last "
                "segment(s) were removed, or its writer died and has not come back (or lost its disk)"
            )


def _link_problem(before: Sealed | None, sealed: Sealed, expired_before: float) -> str | None:
    head = sealed.head
    if head.prev is None:
        if before is not None and not before.head.closed:
            return (
                f"a new chain starts after {_when(before.head.period)}, which was not closed: segments after it "
                "were removed, or the writer lost its spool and state (its disk)"
            )
        return None
    if before is None:
        if head.prev_period is not None and head.prev_period < expired_before:
            return None  # the segments before it expired
        return f"links to the segment of {_when(head.prev_period or 0)}, which is missing"
    if head.prev != before.mac or head.prev_period != before.head.period:
        return f"links to the segment of {_when(head.prev_period or 0)}, not to {_when(before.head.period)}: missing"
    return None


def _check_forks(stream: str, heads: list[tuple[Place, Sealed]], report: Report, expired_before: float) -> None:
    macs = {sealed.mac for _, sealed in heads}
    for place, sealed in heads:
        prev = sealed.head.prev
        expired = sealed.head.prev_period is not None and sealed.head.prev_period < expired_before
        if prev is not None and prev not in macs and not expired:
            report.problems.append(f"{place.base}: links to a segment of {stream} that is missing")


def _when(epoch: int | float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")
