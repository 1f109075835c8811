"""The operator's side of scope, from the settings: the deny list, the private ranges and the allowed resolvers."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from config import Settings
from config.egress import BLOCKED, METADATA
from tasks.errors import ScopeEntryError, TargetError
from tasks.scope import matcher
from tasks.scope import resolve as resolve_module
from tasks.scope.check import Checker
from tasks.scope.entry import Entry, parse
from tasks.scope.host import Network, address, network
from tasks.scope.matcher import Policy, Ranges, address_network
from tasks.scope.resolve import Resolved

# Denied whatever the operator writes: cloud metadata (credentials live there) and link-local.
ALWAYS_DENIED: tuple[str, ...] = (*(cidr for cidr, _ in METADATA), "169.254.0.0/16", "fe80::/10")
# Out of every scope unless TOOLRUNNER_SCOPE_ALLOW_PRIVATE lists them: everything that is not the public Internet.
PRIVATE: tuple[str, ...] = tuple(cidr for cidr, _ in BLOCKED)


def policy(settings: Settings) -> Policy:
    """The policy the settings describe; a malformed list item fails here, at worker start, naming the setting."""
    deny = [_entry(item, "TOOLRUNNER_SCOPE_DENY") for item in settings.scope_deny]
    # The constants are read as written: host.network() would read ::ffff:0:0/96 as the IPv4 it maps, 0.0.0.0/0,
    # and make every IPv4 address private (a target is unwrapped to IPv4 anyway, so the IPv6 range stays IPv6).
    return Policy(
        deny_ranges=Ranges([*(address_network(c) for c in ALWAYS_DENIED), *(e.network for e in deny if e.network)]),
        deny_names=matcher.names(deny),
        private=Ranges(address_network(c) for c in PRIVATE),
        allow_private=Ranges(_network(item, "TOOLRUNNER_SCOPE_ALLOW_PRIVATE") for item in settings.scope_allow_private),
        resolvers=Ranges(_network(item, "TOOLRUNNER_SCOPE_RESOLVERS") for item in settings.scope_resolvers),
    )


def _entry(item: str, setting: str) -> Entry:
    try:  # a deny list may name public suffixes (gov, mil) and any name: it only ever narrows what is scanned
        return parse(item, max_prefix_v4=0, max_prefix_v6=0, unsafe_names=True)
    except ScopeEntryError as exc:
        raise ValueError(f"{setting}: {exc}") from None


def setting_network(item: str, setting: str) -> Network:
    """An address or CIDR network an operator listed in `setting`; ValueError naming the setting when malformed."""
    return _network(item, setting)


def _network(item: str, setting: str) -> Network:
    try:
        if "/" in item:
            return network(item)
        found = address(item)
    except TargetError as exc:
        raise ValueError(f"{setting}: {exc}") from None
    if found is None:
        raise ValueError(f"{setting}: {item!r} is not an address or a CIDR network")
    return ipaddress.ip_network(found)


def checker(settings: Settings) -> Checker:
    """The checker the settings describe: their policy, and the resolver names are resolved with at admission.

    A malformed TOOLRUNNER_SCOPE_RESOLVER fails here, at worker start, naming the setting.
    """
    try:
        resolve = resolve_module.server(settings.scope_resolver) if settings.scope_resolver else resolve_module.system
    except ValueError as exc:
        raise ValueError(f"TOOLRUNNER_SCOPE_RESOLVER: {exc}") from None
    return Checker(policy(settings), resolve, settings.scope_resolve_timeout_seconds)


def unresolved(names: Sequence[str], timeout: float) -> Resolved:
    """A resolver that resolves nothing (every name answers no addresses): for checks that must not wait on DNS."""
    return {name: [] for name in names}
