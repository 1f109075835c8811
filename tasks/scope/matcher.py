"""Compiled scopes: sorted address intervals and name-suffix sets, so a check costs a bisection or a few lookups.

Checking 10,000 targets against 10,000 entries is then milliseconds (bench.scope), where comparing every
target with every entry would be 10^8 comparisons. Pure.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain

from tasks.scope.entry import Entry
from tasks.scope.host import Network, Span, span


class Ranges:
    """A set of networks as disjoint, merged integer intervals per IP version."""

    def __init__(self, networks: Iterable[Network]) -> None:
        self._merge(span(found) for found in networks)

    @classmethod
    def of(cls, spans: Iterable[Span]) -> Ranges:
        """The set of networks given as spans (host.py)."""
        ranges = cls(())
        ranges._merge(spans)
        return ranges

    def _merge(self, spans: Iterable[Span]) -> None:
        by_version: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for version, low, high in spans:
            by_version[version].append((low, high))
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for version, items in by_version.items():
            merged: list[list[int]] = []
            for low, high in sorted(items):
                if merged and low <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], high)
                else:
                    merged.append([low, high])
            self._starts[version] = [low for low, _ in merged]
            self._ends[version] = [high for _, high in merged]

    def covers(self, found: Network) -> bool:
        """Whether every address of `found` is in the set."""
        return self.covers_span(span(found))

    def touches(self, found: Network) -> bool:
        """Whether any address of `found` is in the set."""
        return self.touches_span(span(found))

    def covers_span(self, found: Span) -> bool:
        """Whether every address of the span is in the set."""
        version, low, high = found
        index = bisect_right(self._starts[version], low) - 1
        return index >= 0 and self._ends[version][index] >= high

    def touches_span(self, found: Span) -> bool:
        """Whether any address of the span is in the set."""
        version, low, high = found
        index = bisect_right(self._starts[version], high) - 1
        return index >= 0 and self._ends[version][index] >= low

    def minus(self, other: Ranges) -> Ranges:
        """The addresses of this set that are not in `other`, in one sweep over both."""
        spans: list[Span] = []
        for version, starts in self._starts.items():
            cuts = list(zip(other._starts[version], other._ends[version], strict=True))
            first = 0
            for low, high in zip(starts, self._ends[version], strict=True):
                while first < len(cuts) and cuts[first][1] < low:
                    first += 1
                start, index = low, first
                while index < len(cuts) and cuts[index][0] <= high:
                    if cuts[index][0] > start:
                        spans.append((version, start, cuts[index][0] - 1))
                    start = max(start, cuts[index][1] + 1)
                    index += 1
                if start <= high:
                    spans.append((version, start, high))
        return Ranges.of(spans)

    def spans(self) -> Iterator[Span]:
        """The merged intervals, as spans."""
        for version, starts in self._starts.items():
            for low, high in zip(starts, self._ends[version], strict=True):
                yield version, low, high

    def __bool__(self) -> bool:
        return any(self._starts.values())


@dataclass(frozen=True)
class Names:
    """Domains with their subdomains (`subtrees`) and names alone (`exact`)."""

    subtrees: frozenset[str] = frozenset()
    exact: frozenset[str] = frozenset()

    def matches(self, name: str) -> bool:
        """Whether the name is one of `exact`, or one of `subtrees` or below one."""
        subtrees = self.subtrees
        if name in self.exact or name in subtrees:
            return True
        if not subtrees:  # the deny list's names, most often
            return False
        dot = name.find(".")
        while dot >= 0:
            if name[dot + 1 :] in subtrees:
                return True
            dot = name.find(".", dot + 1)
        return False


def names(entries: Iterable[Entry]) -> Names:
    """The domain entries among `entries` as Names."""
    items = [e for e in entries if e.domain is not None]
    subtrees = frozenset(str(e.domain) for e in items if not e.exact)
    return Names(subtrees, frozenset(str(e.domain) for e in items if e.exact))


def ranges(entries: Iterable[Entry]) -> Ranges:
    """The network entries among `entries` as Ranges."""
    return Ranges.of(e.span for e in entries if e.span is not None)


_INCLUDED, _EXCLUDED, _INCLUDED_EXACT, _EXCLUDED_EXACT = 1, 2, 4, 8


@dataclass(frozen=True)
class Scope:
    """One tenant's compiled scope: what it includes, minus what it excludes."""

    include_ranges: Ranges = field(default_factory=lambda: Ranges(()))
    include_names: Names = field(default_factory=Names)
    exclude_ranges: Ranges = field(default_factory=lambda: Ranges(()))
    exclude_names: Names = field(default_factory=Names)
    empty: bool = True
    # The last policy this scope was checked under, and what it leaves clear of the scope (`clear`).
    _clear: list[tuple[Policy, Ranges]] = field(default_factory=list, compare=False, repr=False)
    # Every domain of the four name sets, with what it is (_INCLUDED and _EXCLUDED bits): one walk up a name's
    # suffixes answers name_reason, where the two Names would walk twice.
    _names: dict[str, int] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        marks: dict[str, int] = {}
        for domains, mark in (
            (self.include_names.subtrees, _INCLUDED), (self.exclude_names.subtrees, _EXCLUDED),
            (self.include_names.exact, _INCLUDED_EXACT), (self.exclude_names.exact, _EXCLUDED_EXACT),
        ):  # fmt: skip
            for domain in domains:
                marks[domain] = marks.get(domain, 0) | mark
        object.__setattr__(self, "_names", marks)

    @classmethod
    def of(cls, include: Iterable[Entry], exclude: Iterable[Entry] = ()) -> Scope:
        """Compile entries (already canonical) into a scope."""
        include, exclude = list(include), list(exclude)
        return cls(ranges(include), names(include), ranges(exclude), names(exclude), empty=not include)

    def network_reason(self, found: Network) -> str | None:
        """Why a network is not in scope (excluded, partly or wholly outside), or None when it is."""
        return self.span_reason(span(found))

    def span_reason(self, found: Span) -> str | None:
        """network_reason of a span (host.py)."""
        if self.exclude_ranges.touches_span(found):
            return "excluded from the tenant's scope"
        if self.include_ranges.covers_span(found):
            return None
        partly = self.include_ranges.touches_span(found)
        return "partly outside the tenant's scope" if partly else "outside the tenant's scope"

    def clear(self, policy: Policy) -> Ranges:
        """The included addresses no exclusion and nothing the policy refuses touches: a span they cover is
        allowed in one bisection, where span_reason and the policy's take four. A span they do not cover may be
        allowed still (a private address the operator allows): ask the reasons."""
        cached = self._clear
        if not cached or cached[0][0] is not policy:  # a worker has one policy: built once per compiled scope
            refused = Ranges.of(chain(policy.refused.spans(), self.exclude_ranges.spans()))
            cached[:] = [(policy, self.include_ranges.minus(refused))]
        return cached[0][1]

    def name_reason(self, name: str) -> str | None:
        """Why a name is not in scope, or None when it is (a name is in scope by its domain entries only)."""
        marks = self._names
        found = marks.get(name, 0)  # the name itself: as a subtree or as a name alone
        if found & (_EXCLUDED | _EXCLUDED_EXACT):
            return "excluded from the tenant's scope"
        dot = name.find(".")
        while dot >= 0:  # each domain above it, as a subtree only
            above = marks.get(name[dot + 1 :], 0) & (_INCLUDED | _EXCLUDED)
            if above & _EXCLUDED:
                return "excluded from the tenant's scope"
            found |= above
            dot = name.find(".", dot + 1)
        return None if found & (_INCLUDED | _INCLUDED_EXACT) else "outside the tenant's scope"


@dataclass(frozen=True)
class Policy:
    """What no scope opens: the deny list, and private ranges unless the operator allows them; resolvers allowed."""

    deny_ranges: Ranges
    deny_names: Names
    private: Ranges
    allow_private: Ranges
    resolvers: Ranges

    @cached_property
    def refused(self) -> Ranges:
        """The deny list and the private ranges in one: what span_reason may refuse."""
        return Ranges.of(chain(self.deny_ranges.spans(), self.private.spans()))

    @cached_property
    def clear(self) -> Ranges:
        """Every address the policy alone refuses nothing of, for checks with scope off (Scope.clear)."""
        return Ranges.of(((4, 0, (1 << 32) - 1), (6, 0, (1 << 128) - 1))).minus(self.refused)

    def network_reason(self, found: Network) -> str | None:
        """Why no scope may hold this network (denied, or private and not allowed), or None."""
        return self.span_reason(span(found))

    def span_reason(self, found: Span) -> str | None:
        """network_reason of a span (host.py)."""
        if self.deny_ranges.touches_span(found):
            return "on the deny list (TOOLRUNNER_SCOPE_DENY, cloud metadata and link-local always)"
        if self.private.touches_span(found) and not self.allow_private.covers_span(found):
            return "a private, loopback or reserved address not in TOOLRUNNER_SCOPE_ALLOW_PRIVATE"
        return None

    def name_reason(self, name: str) -> str | None:
        """Why no scope may hold this name (on the deny list), or None."""
        return "on the deny list (TOOLRUNNER_SCOPE_DENY)" if self.deny_names.matches(name) else None


def address_network(text: str) -> Network:
    """A network from trusted configuration text (an address is its own /32 or /128)."""
    return ipaddress.ip_network(text, strict=False)
