"""tasks/scope/host.py reads addresses with inet_pton and networks as integer spans: the answers ipaddress gives."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.errors import TargetError
from tasks.scope import host
from tasks.scope.entry import parse
from tasks.tools import TargetKind

FORMS = [
    "0.0.0.0", "255.255.255.255", "192.0.2.7", "1.2.3.04", "010.0.0.1", "00.1.2.3", "1.2.3.256", "999.1.1.1",
    "::", "::1", "::2", "::ffff:192.0.2.7", "::192.0.2.7", "::ffff:1.2.3.04", "::ffff:1.2.3", "::ffff:256.1.1.1",
    "1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8::", "1::2::3", "12345::", ":1::", "1:::2", "00000::",
    "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3.4.5", "1.2.3.4::", "2001:DB8::1", "g::", "::é", "1:2",
    "64:ff9b::192.0.2.7", "64:ff9b::1", "64:ff9b:1::1", "2002:c000:207::1", "2002::", "2001::1", "::1:0:0",
]  # fmt: skip


def by_ipaddress(text: str) -> host.Address | None:
    """What ipaddress makes of text (IPv4-mapped and -compatible as IPv4), None when it refuses it."""
    try:
        return host.unwrapped(ipaddress.ip_address(text))
    except ValueError:
        return None


def by_host(text: str) -> host.Address | None:
    try:
        return host.address(text)
    except TargetError:
        return None


@pytest.mark.parametrize("text", FORMS)
def test_an_address_reads_as_ipaddress_reads_it(text: str) -> None:
    assert by_host(text) == by_ipaddress(text)


@given(st.integers(min_value=0, max_value=2**128 - 1), st.booleans())
def test_every_ipv6_address_reads_as_ipaddress_reads_it_compressed_or_exploded(value: int, exploded: bool) -> None:
    found = ipaddress.IPv6Address(value)
    text = found.exploded if exploded else str(found)
    assert by_host(text) == by_ipaddress(text)


@given(st.text(alphabet="0123456789abcdefABCDEF:.", max_size=45))
def test_any_text_of_address_characters_reads_as_ipaddress_reads_it(text: str) -> None:
    if ":" in text or host.address_span(text) is not None:  # without a colon only dotted quads are addresses
        assert by_host(text) == by_ipaddress(text)


@pytest.mark.parametrize(
    ("text", "network"),
    [("192.0.2.77/24", "192.0.2.0/24"), ("192.0.2.77/32", "192.0.2.77/32"), ("0.0.0.0/0", "0.0.0.0/0"),
     ("::ffff:192.0.2.0/120", "192.0.2.0/24"), ("2001:db8::1/48", "2001:db8::/48"), ("::/0", "::/0"),
     ("2001:db8::1", "2001:db8::1/128"), ("192.0.2.7", "192.0.2.7/32"), ("64:ff9b::/96", "64:ff9b::/96"),
     ("2002:c000:207::/48", "2002:c000:207::/48"), ("64:ff9b::192.0.2.7", "192.0.2.7/32"),
     ("::192.0.2.0/120", "192.0.2.0/24")],
)  # fmt: skip
def test_a_targets_network_is_its_normalised_cidr(text: str, network: str) -> None:
    assert host.read(TargetKind.HOST, text).network == ipaddress.ip_network(network)


@pytest.mark.parametrize("text", ["192.0.2.0/33", "::ffff:192.0.2.0/95", "2001:db8::/129", "192.0.2.0/x"])
def test_a_prefix_out_of_range_is_refused(text: str) -> None:
    with pytest.raises(TargetError):
        host.read(TargetKind.HOST, text)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("192.0.2.77/24", "192.0.2.0/24"), ("192.0.2.7", "192.0.2.7"), ("2001:DB8:0:0::1", "2001:db8::1"),
     ("::ffff:192.0.2.7", "192.0.2.7"), ("2001:db8::1/48", "2001:db8::/48"), ("192.0.2.7/32", "192.0.2.7")],
)  # fmt: skip
def test_a_network_entry_is_stored_in_its_canonical_form(text: str, canonical: str) -> None:
    assert str(parse(text, max_prefix_v4=16, max_prefix_v6=48)) == canonical
