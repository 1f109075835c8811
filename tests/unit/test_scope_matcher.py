"""The compiled scope: merged address intervals and name suffixes, exclusions winning over inclusions."""

from __future__ import annotations

import ipaddress

import pytest

from tasks.scope.matcher import Names, Ranges
from tests.unit.helpers import scope_of


def ranges(*networks: str) -> Ranges:
    return Ranges(ipaddress.ip_network(n) for n in networks)


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text, strict=False)


@pytest.mark.parametrize(
    ("networks", "target", "covers", "touches"),
    [
        (("192.0.2.0/25", "192.0.2.128/25"), "192.0.2.0/24", True, True),  # adjacent entries merge
        (("192.0.2.0/24", "192.0.2.64/26"), "192.0.2.0/24", True, True),  # nested ones too
        (("192.0.2.0/25", "192.0.2.192/26"), "192.0.2.0/24", False, True),  # a gap: only touched
        (("192.0.2.0/25",), "192.0.2.128/25", False, False),
        (("192.0.2.0/25",), "192.0.2.127", True, True),
        (("192.0.2.0/25",), "192.0.2.128", False, False),
        (("198.51.100.0/24", "192.0.2.0/24"), "198.51.100.9", True, True),  # order of entries does not matter
        (("2001:db8::/48",), "2001:db8:0:ffff::/64", True, True),
        (("2001:db8::/48",), "2001:db8::/47", False, True),
        (("192.0.2.0/24",), "::ffff:c000:200/120", False, False),  # versions never mix (hosts unwrap before this)
        ((), "192.0.2.1", False, False),
        (("0.0.0.0/0",), "255.255.255.255", True, True),
    ],
)
def test_ranges_cover_and_touch_as_the_union_of_their_networks(
    networks: tuple[str, ...], target: str, covers: bool, touches: bool
) -> None:
    compiled = ranges(*networks)
    assert (compiled.covers(net(target)), compiled.touches(net(target))) == (covers, touches)


@pytest.mark.parametrize(("networks", "truth"), [((), False), (("192.0.2.0/24",), True), (("2001:db8::/48",), True)])
def test_ranges_are_true_when_they_hold_any_network(networks: tuple[str, ...], truth: bool) -> None:
    assert bool(ranges(*networks)) is truth


@pytest.mark.parametrize(
    ("name", "matches"),
    [
        ("example.com", True),
        ("www.example.com", True),
        ("a.b.example.com", True),
        ("badexample.com", False),
        ("example.com.evil.example", False),
        ("com", False),
        ("www.example.org", True),
        ("example.org", False),
        ("a.www.example.org", False),
    ],
)
def test_names_match_subtrees_with_their_subdomains_and_exact_names_alone(name: str, matches: bool) -> None:
    names = Names(subtrees=frozenset({"example.com"}), exact=frozenset({"www.example.org"}))
    assert names.matches(name) is matches


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("192.0.2.10", None),
        ("192.0.2.0/25", "excluded from the tenant's scope"),  # holds the excluded address
        ("192.0.2.5", "excluded from the tenant's scope"),
        ("192.0.2.128/25", None),
        ("192.0.2.0/23", "excluded from the tenant's scope"),
        ("192.0.3.0/24", "outside the tenant's scope"),
        ("192.0.2.254/31", None),
        ("198.51.100.0/23", "partly outside the tenant's scope"),
        ("2001:db8::1", None),
        ("2001:db8:1::1", "outside the tenant's scope"),
    ],
)
def test_an_exclusion_wins_over_the_inclusions_around_it_for_networks(target: str, reason: str | None) -> None:
    scope = scope_of("192.0.2.0/24", "198.51.100.0/24", "2001:db8::/48", exclude=["192.0.2.5"])
    assert scope.network_reason(net(target)) == reason


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("example.com", None),
        ("www.example.com", None),
        ("db.example.com", "excluded from the tenant's scope"),
        ("x.db.example.com", "excluded from the tenant's scope"),
        ("admin.example.com", "excluded from the tenant's scope"),
        ("x.admin.example.com", None),  # an exact exclusion leaves the names below it in scope
        ("example.org", "outside the tenant's scope"),
        ("www.example.org", None),
        ("a.www.example.org", "outside the tenant's scope"),
    ],
)
def test_an_exclusion_wins_over_the_inclusions_around_it_for_names(name: str, reason: str | None) -> None:
    scope = scope_of("example.com", "=www.example.org", exclude=["db.example.com", "=admin.example.com"])
    assert scope.name_reason(name) == reason


@pytest.mark.parametrize(
    ("entries", "exclusions", "empty"), [((), (), True), ((), ("192.0.2.5",), True), (("example.com",), (), False)]
)
def test_a_scope_without_inclusions_is_empty_whatever_it_excludes(
    entries: tuple[str, ...], exclusions: tuple[str, ...], empty: bool
) -> None:
    assert scope_of(*entries, exclude=exclusions).empty is empty
