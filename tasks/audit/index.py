"""A segment's search index: per tenant, the address ranges its targets and resolved names cover, and its names.

Addresses and CIDR networks become `[first, last]` integer intervals per IP version, merged and sorted, so an
address inside a scanned network is found by one bisection; host names are kept as 8-byte BLAKE2b digests. IPv4
intervals and names are packed arrays (native byte order, little-endian where toolrunner runs) read in place
through a memoryview: parsing the same index as JSON made a month's search take 20-40 s (bench.audit). A part for
every tenant together answers a search without --tenant in one bisection. The index lives inside the sealed
`.idx` object, so it reveals nothing without the audit key. Pure.
"""

from __future__ import annotations

import bisect
import hashlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tasks.audit.event import canonical_json
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


def name_digest(name: str) -> int:
    """The index's digest of a host name: 8 bytes of BLAKE2b as an integer."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


@dataclass
class Part:
    """One tenant's part of a segment's index (or every tenant's, the part a search without --tenant reads)."""

    ranges: dict[int, list[tuple[int, int]]] = field(default_factory=lambda: {4: [], 6: []})
    names: set[int] = field(default_factory=set)

    def add(self, query: Query) -> None:
        """Cover an address, network or name."""
        if query.span is not None:
            version, first, last = query.span
            self.ranges[version].append((first, last))
        if query.name is not None:
            self.names.add(name_digest(query.name))

    def pack(self, blob: bytearray) -> list[Any]:
        """Append the part's arrays to blob; return its section: [offset, IPv4 ranges, names, IPv6 [first, last]...]."""
        v4 = _merged(self.ranges[4])
        section = [len(blob), len(v4), len(self.names), [n for pair in _merged(self.ranges[6]) for n in pair]]
        blob += array("I", [first for first, _ in v4]).tobytes() + array("I", [last for _, last in v4]).tobytes()
        blob += array("Q", sorted(self.names)).tobytes()
        return section


@dataclass(frozen=True)
class Index:
    """A segment's index as stored: sections (JSON) that point into a blob of sorted arrays."""

    sections: dict[str, Any]
    blob: bytes

    def digest(self) -> str:
        """What the segment's head names the index by."""
        return hashlib.sha256(canonical_json(self.sections) + b"\n" + self.blob).hexdigest()

    def may_match(self, query: Query, tenant: str | None) -> bool:
        """Whether the segment may hold an event about `query` (of `tenant`, when given)."""
        section = self.sections["all"] if tenant is None else self.sections["tenants"].get(tenant)
        return section is not None and _section_matches(memoryview(self.blob), section, query)


def build(events: Iterable[tuple[str, Iterable[str], dict[str, list[str]]]]) -> Index:
    """The index of (tenant, targets, resolved) triples, one per event."""
    everyone, tenants = Part(), dict[str, Part]()
    for tenant, targets, resolved in events:
        part = tenants.setdefault(tenant, Part())
        queries = [read_target(t) for t in targets]
        for name, addresses in resolved.items():
            queries += [read_target(name), *(read_target(a) for a in addresses)]
        for query in queries:
            part.add(query)
            everyone.add(query)
    blob = bytearray()
    sections = {"all": everyone.pack(blob), "tenants": {t: tenants[t].pack(blob) for t in sorted(tenants)}}
    return Index(sections, bytes(blob))


def _section_matches(blob: memoryview, section: list[Any], query: Query) -> bool:
    offset, v4, names, v6 = section
    if query.name is not None:
        digests = blob[offset + 8 * v4 : offset + 8 * v4 + 8 * names].cast("Q")
        at = bisect.bisect_left(digests, name_digest(query.name))
        if at < names and digests[at] == name_digest(query.name):
            return True
    if query.span is None:
        return False
    version, first, last = query.span
    if version == 4:
        starts, ends = blob[offset : offset + 4 * v4].cast("I"), blob[offset + 4 * v4 : offset + 8 * v4].cast("I")
    else:
        starts, ends = v6[0::2], v6[1::2]
    # The last interval starting at or before `last` is the only one that can overlap [first, last]: they are disjoint.
    at = bisect.bisect_right(starts, last) - 1
    return at >= 0 and ends[at] >= first


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
