"""A segment's search index: per tenant, the address ranges its targets and resolved names cover, and its names.

Addresses and CIDR networks become `[first, last]` integer intervals per IP version, merged and sorted, so an
address inside a scanned network is found by one bisection; host names are kept as 8-byte BLAKE2b digests. The
index lives inside the sealed `.idx` object, so it reveals nothing without the audit key. Pure.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tasks.errors import TargetError
from tasks.scope import host
from tasks.tools import TargetKind

Span = tuple[int, int, int]  # (IP version, first address, last address), as tasks.scope.host reads them


@dataclass(frozen=True)
class Query:
    """What a search looks for: an address or network (`span`), or a host name."""

    text: str
    span: Span | None = None
    name: str | None = None


def read_target(text: str) -> Query:
    """A target as the tools read it: an address, a network, a URL's or host:port's host, or a name.

    Anything unreadable is kept as its lower-cased text, matched as a name: the audit records what was asked,
    readable or not.
    """
    try:
        if "://" in text:
            found = host.read(TargetKind.URL, text)
        elif "/" in text:
            return Query(text, span=host.network_span(text))
        elif text.startswith("[") or text.count(":") == 1:
            found = host.read(TargetKind.WEB, text)
        else:
            span = host.address_span(text)
            return Query(text, span=span) if span is not None else Query(text, name=host.name(text))
    except TargetError:
        return Query(text, name=text.strip().lower())
    return Query(text, span=found.span, name=found.name)


def name_digest(name: str) -> str:
    """The index's digest of a host name."""
    return hashlib.blake2b(name.encode(), digest_size=8).hexdigest()


@dataclass
class TenantIndex:
    """One tenant's part of a segment's index."""

    ranges: dict[int, list[tuple[int, int]]] = field(default_factory=lambda: {4: [], 6: []})
    names: set[str] = field(default_factory=set)

    def add(self, query: Query) -> None:
        """Cover an address, network or name."""
        if query.span is not None:
            version, first, last = query.span
            self.ranges[version].append((first, last))
        if query.name is not None:
            self.names.add(name_digest(query.name))

    def as_json(self) -> dict[str, Any]:
        """Merged ranges flattened to [first, last, first, last, ...] per version, and sorted name digests."""
        return {str(v): [n for pair in _merged(r) for n in pair] for v, r in self.ranges.items()} | {
            "n": sorted(self.names)
        }


def build(events: Iterable[tuple[str, Iterable[str], dict[str, list[str]]]]) -> dict[str, Any]:
    """The index of (tenant, targets, resolved) triples, one per event, as the `.idx` object stores it."""
    tenants: dict[str, TenantIndex] = {}
    for tenant, targets, resolved in events:
        part = tenants.setdefault(tenant, TenantIndex())
        for target in targets:
            part.add(read_target(target))
        for name, addresses in resolved.items():
            part.add(read_target(name))
            for address in addresses:
                part.add(read_target(address))
    return {tenant: part.as_json() for tenant, part in sorted(tenants.items())}


def may_match(index: dict[str, Any], query: Query, tenant: str | None) -> bool:
    """Whether a segment with this index may hold an event about `query` (of `tenant`, when given)."""
    parts = [index[tenant]] if tenant is not None and tenant in index else [] if tenant is not None else index.values()
    return any(_part_matches(part, query) for part in parts)


def _part_matches(part: dict[str, Any], query: Query) -> bool:
    if query.name is not None and name_digest(query.name) in part["n"]:
        return True
    if query.span is None:
        return False
    version, first, last = query.span
    flat: list[int] = part[str(version)]
    starts = flat[0::2]
    # The last interval starting at or before `last` is the only one that can overlap [first, last]: they are disjoint.
    at = bisect.bisect_right(starts, last) - 1
    return at >= 0 and flat[2 * at + 1] >= first


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def overlaps(a: Query, b: Query) -> bool:
    """Whether two read targets name the same place: overlapping address ranges, or the same name."""
    if a.name is not None and a.name == b.name:
        return True
    if a.span is None or b.span is None or a.span[0] != b.span[0]:
        return False
    return a.span[1] <= b.span[2] and b.span[1] <= a.span[2]
