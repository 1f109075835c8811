"""effective(): which override gives a host key its limits, the rule the fair-share Lua mirrors."""

from __future__ import annotations

import ipaddress
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.hosts import Limits, Override, canonical, effective, read

RUNNING, RPS = 2, 50.0


def override(text: str, n: int | None = None, r: float | None = None) -> Override:
    span = read(text)
    return Override(canonical(span), span, n, r)


def limits(key: str, *overrides: Override) -> Limits:
    return effective(overrides, read(key), RUNNING, RPS)


def test_without_overrides_a_host_gets_the_defaults() -> None:
    assert limits("198.51.100.7") == Limits(2, 50.0, None, None)


def test_an_override_of_the_address_itself_gives_both_its_limits() -> None:
    found = limits("198.51.100.7", override("198.51.100.7", n=1, r=5))
    assert found == Limits(1, 5.0, "198.51.100.7/32", "198.51.100.7/32")


def test_of_the_networks_covering_an_address_the_longest_prefix_gives_the_limit() -> None:
    wide, narrow = override("198.51.0.0/16", n=8, r=100), override("198.51.100.0/24", n=3, r=20)
    assert limits("198.51.100.7", wide, narrow) == Limits(3, 20.0, "198.51.100.0/24", "198.51.100.0/24")
    assert limits("198.51.7.7", wide, narrow) == Limits(8, 100.0, "198.51.0.0/16", "198.51.0.0/16")


def test_a_more_specific_override_may_loosen_what_a_covering_network_sets_for_an_address() -> None:
    found = limits("198.51.100.7", override("198.51.100.0/24", n=1, r=5), override("198.51.100.7", n=4, r=80))
    assert found == Limits(4, 80.0, "198.51.100.7/32", "198.51.100.7/32")


def test_each_limit_falls_through_to_the_next_covering_override_that_sets_it() -> None:
    host = override("198.51.100.7", n=1)
    block = override("198.51.100.0/24", r=10)
    wide = override("198.51.0.0/16", n=6, r=300)
    assert limits("198.51.100.7", host, block, wide) == Limits(1, 10.0, "198.51.100.7/32", "198.51.100.0/24")
    assert limits("198.51.100.7", override("198.51.100.7", r=7), block) == Limits(2, 7.0, None, "198.51.100.7/32")
    assert limits("198.51.100.8", host, block, wide) == Limits(6, 10.0, "198.51.0.0/16", "198.51.100.0/24")


def test_a_narrower_override_inside_a_block_tightens_the_block() -> None:
    inside = override("198.51.100.7", n=1, r=5)
    assert limits("198.51.100.0/24", inside) == Limits(1, 5.0, "198.51.100.7/32", "198.51.100.7/32")
    covering = override("198.51.0.0/16", n=4, r=40)
    assert limits("198.51.100.0/24", covering, override("198.51.100.16/28", r=9)) == Limits(
        4, 9.0, "198.51.0.0/16", "198.51.100.16/28"
    )


def test_a_narrower_override_never_loosens_a_block() -> None:
    found = limits("198.51.100.0/24", override("198.51.100.0/24", n=3, r=30), override("198.51.100.7", n=9, r=90))
    assert found == Limits(3, 30.0, "198.51.100.0/24", "198.51.100.0/24")
    assert limits("198.51.100.0/24", override("198.51.100.7", n=9, r=90)) == Limits(2, 50.0, None, None)


def test_the_smallest_of_several_narrower_overrides_wins_and_a_tie_keeps_the_covering_source() -> None:
    block = override("198.51.100.0/24", n=2)
    found = limits(
        "198.51.100.0/24", block, override("198.51.100.1", n=2, r=8), override("198.51.100.9", r=3),
        override("198.51.100.64/26", r=3), override("198.51.100.200", n=5),
    )  # fmt: skip
    assert found == Limits(2, 3.0, "198.51.100.0/24", "198.51.100.9/32"), "the first narrower one gives a tie"


def test_an_override_of_the_exact_block_covers_it_and_does_not_count_as_narrower() -> None:
    found = limits("198.51.100.0/24", override("198.51.100.0/24", n=5), override("198.51.0.0/16", n=1))
    assert found == Limits(5, 50.0, "198.51.100.0/24", None)


def test_overrides_outside_the_key_and_of_the_other_ip_version_never_apply() -> None:
    unrelated = [override("198.51.101.0/24", n=1, r=1), override("::/0", n=1, r=1), override("2001:db8::/32", n=1)]
    assert limits("198.51.100.7", *unrelated) == Limits(2, 50.0, None, None)
    assert limits("198.51.100.0/24", *unrelated) == Limits(2, 50.0, None, None)
    assert limits("2001:db9::1", *unrelated) == Limits(1, 1.0, "::/0", "::/0")


def test_ipv6_addresses_and_blocks_follow_the_same_rule() -> None:
    net = override("2001:db8::/64", r=200)
    host = override("2001:db8::7", n=1)
    assert limits("2001:db8::7", net, host) == Limits(1, 200.0, "2001:db8::7/128", "2001:db8::/64")
    assert limits("2001:db8::/64", net, host) == Limits(1, 200.0, "2001:db8::7/128", "2001:db8::/64")
    assert limits("2001:db8:0:1::/64", net, host) == Limits(2, 50.0, None, None)


def test_an_ipv4_mapped_address_gets_the_limits_of_its_ipv4_address() -> None:
    mapped = override("::ffff:198.51.100.7", n=1)
    assert mapped.host == "198.51.100.7/32"
    assert limits("198.51.100.7", mapped) == limits("::ffff:198.51.100.7", override("198.51.100.7", n=1))
    assert limits("::ffff:198.51.100.7", override("198.51.100.0/24", r=5)).max_rps == 5.0
    assert limits("::ffff:198.51.100.7", override("::ffff:0:0/96", r=5)).max_rps == 5.0, "mapped /96 is 0.0.0.0/0"


def test_the_order_the_overrides_come_in_changes_nothing() -> None:
    overrides = [
        override("198.51.0.0/16", n=6), override("198.51.100.0/24", r=10), override("198.51.100.7", n=1),
        override("198.51.100.9", r=10), override("198.51.100.16/28", r=4),
    ]  # fmt: skip
    for key in ("198.51.100.7", "198.51.100.0/24", "198.51.100.20"):
        found = {limits(key, *order) for order in itertools.permutations(overrides)}
        assert len(found) == 1, key


# A property: the rule restated with ipaddress's containment, over random overrides in a small space.

_BASE = int(ipaddress.IPv4Address("10.0.0.0"))  # every network within 10.0.0.0/20, so that they overlap often
_NETS = st.builds(lambda low, prefix: ipaddress.IPv4Network((_BASE + low, prefix), strict=False),
                  st.integers(0, 4095), st.integers(20, 32))  # fmt: skip
_OVERRIDES = st.lists(
    st.tuples(_NETS, st.none() | st.integers(1, 9), st.none() | st.integers(1, 99)).filter(lambda t: t[1] or t[2]),
    max_size=8, unique_by=lambda t: t[0],
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(_OVERRIDES, _NETS.filter(lambda n: n.prefixlen >= 24))
def test_the_rule_agrees_with_it_restated_on_ipaddress_networks(
    raw: list[tuple[ipaddress.IPv4Network, int | None, int | None]], key: ipaddress.IPv4Network
) -> None:
    overrides = [override(str(net), n, None if r is None else float(r)) for net, n, r in raw]
    found = limits(str(key), *overrides)
    for field, default in ((1, RUNNING), (2, RPS)):
        covering = [(t[0].prefixlen, t[field]) for t in raw if t[field] is not None and key.subnet_of(t[0])]
        value = max(covering)[1] if covering else default
        inside = [t[field] for t in raw if t[field] is not None and t[0].subnet_of(key) and t[0] != key]
        expected = min([value, *inside])
        assert (found.max_running if field == 1 else found.max_rps) == expected
