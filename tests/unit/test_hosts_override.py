"""Per-host overrides as stored: hosts read and canonicalised as scope reads them, limits checked, the Lua's value."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.errors import HostOverrideError, ToolrunnerError
from tasks.hosts import Override, canonical, hex_span, read
from tasks.hosts.override import checked, decode, encode
from tasks.scope import host

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("198.51.100.7", "198.51.100.7/32"),
        (" 198.51.100.7 ", "198.51.100.7/32"),
        ("198.51.100.7/32", "198.51.100.7/32"),
        ("198.51.100.77/24", "198.51.100.0/24"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("2001:DB8::1", "2001:db8::1/128"),
        ("2001:db8:0:0:1::/64", "2001:db8::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7/32"),
        ("::ffff:198.51.100.0/120", "198.51.100.0/24"),
        ("64:ff9b::c633:6407", "198.51.100.7/32"),
    ],
    ids=["v4", "spaces", "v4-32", "host-bits", "everything", "v6", "v6-64", "mapped", "mapped-net", "nat64"],
)
def test_a_host_or_network_is_read_as_scope_reads_it_into_one_canonical_network(given: str, expected: str) -> None:
    assert canonical(read(given)) == expected
    assert canonical(read(expected)) == expected, "the canonical text reads back to itself"


def test_an_ipv4_mapped_address_is_the_same_host_as_the_ipv4_address() -> None:
    assert read("::ffff:198.51.100.7") == read("198.51.100.7") == host.address_span("198.51.100.7")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("example.com", "'example.com' is a name: a host is an IP address or CIDR network (`dig +short example.com`"),
        ("Example.COM.", "is a name: a host is an IP address or CIDR network (`dig +short example.com`"),
        ("10.0.0.1/33", "prefix length /33 is out of range"),
        ("10.0.0.01", "is not an IPv4 address"),
        ("10.0.0.1/x", "the prefix length after '/' must be a number"),
        ("fe80::1%eth0", "zone ids are not accepted"),
        ("not a host!", "is not an IP address or CIDR network"),
        ("", "no host given"),
    ],
    ids=["name", "name-folded", "prefix-33", "leading-zero", "prefix-text", "zone", "junk", "empty"],
)
def test_anything_but_an_address_or_network_is_refused_saying_what_a_host_is(given: str, message: str) -> None:
    with pytest.raises(HostOverrideError, match=re.escape(message)) as refused:
        read(given)
    assert isinstance(refused.value, ToolrunnerError) and isinstance(refused.value, ValueError)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("max_running", "max_rps", "message"),
    [
        (None, None, "give --max-running, --max-rps or both"),
        (0, None, "max running must be a whole number from 1 to 1000, not 0"),
        (1001, None, "not 1001"),
        (True, None, "not True"),
        (None, 0, "max rps must be a number from 1 to 100000, not 0"),
        (None, -1.0, "not -1"),
        (None, float("nan"), "not nan"),
        (None, float("inf"), "not inf"),
        (None, 100_001, "not 100001"),
    ],
)
def test_an_override_sets_a_limit_and_each_within_the_bounds_of_its_setting(
    max_running: int | None, max_rps: float | None, message: str
) -> None:
    with pytest.raises(HostOverrideError, match=re.escape(message)):
        checked(max_running, max_rps)


def test_limits_within_bounds_are_kept_and_a_rate_is_a_float() -> None:
    assert checked(1, None) == (1, None)
    assert checked(None, 50) == (None, 50.0) and isinstance(checked(None, 50)[1], float)
    assert checked(1000, 1.5) == (1000, 1.5)
    with pytest.raises(HostOverrideError, match="from 1 to"):
        checked(None, 0.5)  # below what the whole-number tools can be told


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("198.51.100.7", (4, "c6336407", "c6336407")),
        ("10.0.0.0/8", (4, "0a000000", "0affffff")),
        ("0.0.0.0/0", (4, "00000000", "ffffffff")),
        ("2001:db8::/64", (6, "20010db8000000000000000000000000", "20010db800000000ffffffffffffffff")),
        ("2001:db8::a/128", (6, "20010db800000000000000000000000a", "20010db800000000000000000000000a")),
    ],
)
def test_a_span_in_hex_is_lowercase_and_fixed_width(given: str, expected: tuple[int, str, str]) -> None:
    assert hex_span(read(given)) == expected


def test_comparing_hex_spans_as_strings_orders_them_as_their_addresses() -> None:
    texts = ["::1", "1::", "1::2", "1::10", "2001:db8::", "2001:db8::ffff", "fe80::", "ffff:ffff::"]
    spans = [read(text) for text in texts]
    assert {span[0] for span in spans} == {6}
    assert sorted(spans, key=lambda s: hex_span(s)[1]) == sorted(spans, key=lambda s: s[1]) == spans
    quads = ["9.0.0.0", "10.0.0.0", "10.0.0.9", "10.0.0.10", "100.0.0.0", "255.255.255.255"]
    assert sorted(quads, key=lambda q: hex_span(read(q))[1]) == quads


def test_the_stored_value_is_compact_json_a_lua_script_reads_without_128_bit_arithmetic() -> None:
    override = Override("2001:db8::/64", read("2001:db8::/64"), None, 200.0)
    value = encode(override)
    assert value == (
        '{"v":6,"lo":"20010db8000000000000000000000000","hi":"20010db800000000ffffffffffffffff","p":64,'
        '"n":null,"r":200.0}'
    )
    assert json.loads(value)["p"] == override.prefix == 64
    assert decode("2001:db8::/64", value) == override
    host_override = Override("198.51.100.7/32", read("198.51.100.7"), 1, None)
    assert encode(host_override) == '{"v":4,"lo":"c6336407","hi":"c6336407","p":32,"n":1,"r":null}'
    assert decode("198.51.100.7/32", encode(host_override)) == host_override


@pytest.mark.parametrize(
    "value",
    [
        '{"v":4,"lo":"c6336407","hi":"c6336407","p":32,"n":1,"r":null}',  # another network's value
        '{"v":4,"lo":"c6336400","hi":"c63364ff","p":24,"n":null,"r":null}',  # no limit
        '{"v":4,"lo":"c6336400","hi":"c63364ff","p":24}',
        "not json",
    ],
)
def test_a_value_that_does_not_agree_with_its_field_is_not_read(value: str) -> None:
    with pytest.raises((ValueError, KeyError)):
        decode("198.51.100.0/24", value)


def test_importing_tasks_hosts_brings_in_no_celery_and_no_worker_or_cli() -> None:
    code = "import sys, tasks.hosts; print(sorted(m for m in sys.modules if m.split('.')[0] in ('celery', 'kombu')"
    code += " or m.startswith(('tasks.worker', 'tasks.cli'))))"
    found = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
