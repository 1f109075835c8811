"""The baseline: every target against every entry, with ipaddress's `subnet_of` / `overlaps` and suffix checks.

It canonicalises as the real path does (the same entry.parse and host.read), so the two differ only in
matching: a double loop here, a bisection and a few set lookups there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tasks.errors import TargetError
from tasks.scope import host
from tasks.scope.entry import Entry, parse
from tasks.scope.host import Network
from tasks.scope.matcher import address_network
from tasks.scope.policy import ALWAYS_DENIED, PRIVATE
from tasks.tools import Target


@dataclass(frozen=True)
class NaiveEntry:
    """One entry as the loop compares it: its ipaddress network (built once), or its domain."""

    network: Network | None
    domain: str | None
    exact: bool


@dataclass(frozen=True)
class NaiveScope:
    """Entries and exclusions as lists, and the policy's networks as a list."""

    include: list[NaiveEntry]
    exclude: list[NaiveEntry]
    refused: list[Network]  # denied always, and the private ranges (the benchmark allows none)


def compile_naive(entries: Sequence[str], exclusions: Sequence[str], *, v4: int, v6: int) -> NaiveScope:
    """Parse every entry; nothing is merged, sorted or indexed."""
    return NaiveScope(
        [_naive(parse(text, max_prefix_v4=v4, max_prefix_v6=v6)) for text in entries],
        [_naive(parse(text, max_prefix_v4=v4, max_prefix_v6=v6)) for text in exclusions],
        [address_network(cidr) for cidr in (*ALWAYS_DENIED, *PRIVATE)],
    )


def _naive(entry: Entry) -> NaiveEntry:
    return NaiveEntry(entry.network, entry.domain, entry.exact)


def read(targets: Sequence[Target]) -> list[tuple[Network | None, str | None] | None]:
    """Each target as its tool reads it, as an ipaddress network or a name (None: unreadable, refused)."""
    found: list[tuple[Network | None, str | None] | None] = []
    for kind, text in targets:
        try:
            target = host.read(kind, text)
        except TargetError:
            found.append(None)
        else:
            found.append((target.network, target.name))
    return found


def allowed(scope: NaiveScope, found: tuple[Network | None, str | None] | None) -> bool:
    """Whether one target is in scope, comparing it with each entry in turn."""
    if found is None:
        return False
    net, name = found
    if net is not None:
        if any(net.version == bad.version and net.overlaps(bad) for bad in scope.refused):
            return False
        if any(_network_touches(entry, net) for entry in scope.exclude):
            return False
        return any(_network_covers(entry, net) for entry in scope.include)
    if any(_name_matches(entry, str(name)) for entry in scope.exclude):
        return False
    return any(_name_matches(entry, str(name)) for entry in scope.include)


def _network_covers(entry: NaiveEntry, net: Network) -> bool:
    return entry.network is not None and entry.network.version == net.version and net.subnet_of(entry.network)  # type: ignore[arg-type]


def _network_touches(entry: NaiveEntry, net: Network) -> bool:
    return entry.network is not None and entry.network.version == net.version and net.overlaps(entry.network)


def _name_matches(entry: NaiveEntry, name: str) -> bool:
    if entry.domain is None:
        return False
    return name == entry.domain or (not entry.exact and name.endswith("." + entry.domain))
