"""Writing and reading one segment: its events chained by hash, its head authenticated and linked to the previous.

`.seg` holds the events, one canonical JSON line each, every line carrying the hash of the line before it. `.idx`
holds the head (stream, period, count, first and last hash, the previous head's MAC and period, closed flag, the
digests of the events and the index) with its HMAC and the index's sections as one JSON line, then the index's
packed arrays (tasks/audit/index.py). Both are sealed under the audit key with
their own object key as AAD. A target list longer than BIG_TARGETS is stored beside them and the event keeps its
sha256 and key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

from tasks.artifacts import ObjectStore
from tasks.audit import index
from tasks.audit.errors import AuditIntegrityError
from tasks.audit.event import AuditEvent, canonical_json, event_hash
from tasks.audit.key import AuditKey
from tasks.audit.layout import Place

BIG_TARGETS = 1000


@dataclass(frozen=True)
class Link:
    """What the next segment of a stream points back at: the previous head's MAC and period."""

    mac: str
    period: int


@dataclass(frozen=True)
class Head:
    """A segment's authenticated summary."""

    stream: str
    period: int
    seconds: int
    count: int
    first: str
    last: str
    prev: str | None
    prev_period: int | None
    closed: bool
    oneshot: bool
    events_digest: str
    index_digest: str
    replayed: list[str] = field(default_factory=list)

    def signed(self, key: AuditKey) -> str:
        """The head's MAC under the audit key."""
        return key.mac(canonical_json(asdict(self)))


@dataclass(frozen=True)
class Sealed:
    """A head as stored: with its MAC and the search index it came with."""

    head: Head
    mac: str
    index: index.Index

    @property
    def link(self) -> Link:
        """What the segment after this one points back at."""
        return Link(self.mac, self.head.period)


@dataclass(frozen=True)
class Plan:
    """One segment to write: where, which period length, what it links to, and how it ends its stream."""

    place: Place
    seconds: int
    prev: Link | None
    closed: bool = False
    oneshot: bool = False
    replayed: Sequence[str] = ()


def write_segment(store: ObjectStore, key: AuditKey, plan: Plan, events: Sequence[AuditEvent]) -> Sealed:
    """Store the events as one segment (big target lists beside it first, the head last) and return its head."""
    ordered = sorted(events, key=lambda e: (e.time, e.id))
    idx = index.build((e.tenant, e.targets, e.resolved) for e in ordered)
    lines = _chain([_offload(store, key, plan.place, e) for e in ordered])
    plaintext = b"".join(line + b"\n" for line in lines)
    head = Head(
        stream=plan.place.stream,
        period=plan.place.period,
        seconds=plan.seconds,
        count=len(lines),
        first=event_hash(lines[0]) if lines else "",
        last=event_hash(lines[-1]) if lines else "",
        prev=plan.prev.mac if plan.prev else None,
        prev_period=plan.prev.period if plan.prev else None,
        closed=plan.closed,
        oneshot=plan.oneshot,
        events_digest=hashlib.sha256(plaintext).hexdigest(),
        index_digest=idx.digest(),
        replayed=sorted(plan.replayed),
    )
    mac = head.signed(key)
    store.put(plan.place.segment, key.seal(plan.place.segment, plaintext))
    # The head goes last: a segment whose writer died midway has no head, and verify says so.
    stored = canonical_json({"head": asdict(head), "mac": mac, "sections": idx.sections}) + b"\n" + idx.blob
    store.put(plan.place.index, key.seal(plan.place.index, stored))
    return Sealed(head, mac, idx)


def read_head(store: ObjectStore, key: AuditKey, place: Place) -> Sealed:
    """A segment's head and index, authenticated (AuditIntegrityError otherwise)."""
    text, _, blob = key.open(place.index, store.get(place.index)).partition(b"\n")
    stored = json.loads(text)
    sealed = Sealed(Head(**stored["head"]), stored["mac"], index.Index(stored["sections"], blob))
    if sealed.head.signed(key) != sealed.mac:
        raise AuditIntegrityError(f"{place.index}: the head's MAC does not match")
    if (sealed.head.stream, sealed.head.period) != (place.stream, place.period):
        raise AuditIntegrityError(
            f"{place.index}: the head names stream {sealed.head.stream} period {sealed.head.period}"
        )
    return sealed


def read_lines(store: ObjectStore, key: AuditKey, place: Place) -> list[bytes]:
    """A segment's stored event lines, authenticated as a whole (not yet checked against its head)."""
    return key.open(place.segment, store.get(place.segment)).splitlines()


def read_targets(store: ObjectStore, key: AuditKey, event: AuditEvent) -> list[str]:
    """An event's whole target list: inline, or loaded from its reference and checked against its digest."""
    if not event.targets_ref:
        return event.targets
    raw = key.open(event.targets_ref, store.get(event.targets_ref))
    if hashlib.sha256(raw).hexdigest() != event.targets_digest:
        raise AuditIntegrityError(f"{event.targets_ref}: the target list does not match its event's digest")
    targets: list[str] = json.loads(raw)
    return targets


def _offload(store: ObjectStore, key: AuditKey, place: Place, event: AuditEvent) -> AuditEvent:
    if len(event.targets) <= BIG_TARGETS:
        return event
    raw = canonical_json(event.targets)
    digest = hashlib.sha256(raw).hexdigest()
    ref = place.targets(digest)
    store.put(ref, key.seal(ref, raw))
    return replace(event, targets=[], targets_digest=digest, targets_ref=ref)


def _chain(events: Sequence[AuditEvent]) -> list[bytes]:
    lines: list[bytes] = []
    prev = ""
    for event in events:
        values = event.as_dict()
        values["prev_hash"] = prev  # as event.chained(prev).canonical(), without copying the event
        line = canonical_json(values)
        prev = event_hash(line)
        lines.append(line)
    return lines
