"""The validators the tool modules share: what they accept, what they refuse, and what the refusal says."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from tasks.tools import validation
from tasks.tools.validation import (
    DnsName,
    DomainName,
    PortList,
    StatusCode,
    WebTarget,
    WebUrl,
    dns_name,
    domain_name,
    host_or_network,
    is_ip,
    lines,
    not_both,
    port_list,
    port_number,
    printable,
    str_items,
    web_target,
    web_url,
)

host_or_small_network = partial(host_or_network, max_addresses=65536)
# The validators whose accepted values go straight into argv or one line of an input file.
ARGUMENT_VALIDATORS: list[Callable[[str], str]] = [
    dns_name,
    domain_name,
    host_or_small_network,
    port_list,
    web_target,
    web_url,
]

# Values that would be read as options, or would split one input-file line into two, if a validator let them by.
INJECTIONS = ["-oX", "--script=x", "-", "-iL", "a b", "a\nb", "a\rb", "a\tb", "x.com\n-x", " x.com", ""]


@pytest.mark.parametrize("value", ["192.0.2.1", "0.0.0.0", "2001:db8::1", "::1", "::ffff:192.0.2.1"])
def test_single_ipv4_and_ipv6_addresses_are_ips(value: str) -> None:
    assert is_ip(value)


@pytest.mark.parametrize("value", ["192.0.2.0/24", "2001:db8::/64", "300.1.1.1", "example.com", "-1", "", " 192.0.2.1"])
def test_networks_hostnames_and_malformed_addresses_are_not_ips(value: str) -> None:
    assert not is_ip(value)


@pytest.mark.parametrize("value", ["a", "https://example.com/?q=1#x", "!~", "x" * 2048])
def test_printable_ascii_without_spaces_is_accepted(value: str) -> None:
    assert printable(value, "a target") == value


@pytest.mark.parametrize("value", ["", "a b", "a\nb", "a\tb", "x" * 2049, "caf\u00e9", "a\x00b", "a\x7fb"])
def test_spaces_control_characters_non_ascii_and_overlong_values_are_not_printable(value: str) -> None:
    with pytest.raises(ValueError, match=r"^url must be printable ASCII without spaces, at most 2048 characters$"):
        printable(value, "url")


@pytest.mark.parametrize("value", ["example.com", "_dmarc.example.com", "localhost", "xn--bcher-kva.example", "a.b."])
def test_dns_names_with_underscores_and_single_labels_are_accepted(value: str) -> None:
    assert dns_name(value) == value


@pytest.mark.parametrize(
    "value", [*INJECTIONS, "-a.example.com", "a-.example.com", "a..b", ".example.com", "a" * 64 + ".com", "x" * 254]
)
def test_flags_whitespace_and_malformed_dns_names_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match=r"is not a DNS name$"):
        dns_name(value)


@pytest.mark.parametrize("value", ["example.com", "sub.example.co.uk", "xn--bcher-kva.example", "example.com."])
def test_domain_names_of_two_or_more_labels_are_accepted(value: str) -> None:
    assert domain_name(value) == value


@pytest.mark.parametrize(
    "value", [*INJECTIONS, "localhost", "_dmarc.example.com", "*.example.com", "a..com", "-example.com", "a.com.."]
)
def test_single_labels_underscores_wildcards_and_flags_are_not_domain_names(value: str) -> None:
    with pytest.raises(ValueError, match=r"is not a domain name such as example\.com$"):
        domain_name(value)


@pytest.mark.parametrize(
    "value",
    ["192.0.2.1", "2001:db8::1", "scanme.example.com", "localhost", "host-1.example.org.", "10.0.0.0/16",
     "10.0.0.1/24", "192.0.2.1/32", "2001:db8::/112"],
)  # fmt: skip
def test_hosts_addresses_and_networks_within_the_limit_are_accepted(value: str) -> None:
    assert host_or_small_network(value) == value


@pytest.mark.parametrize("value", ["10.0.0.0/15", "10.0.0.0/8", "0.0.0.0/0", "::/0", "2001:db8::/64", "2001:db8::/111"])
def test_networks_over_the_limit_are_refused_with_the_limit_named(value: str) -> None:
    with pytest.raises(ValueError, match=rf"^network '{value}' has more than 65536 addresses$"):
        host_or_small_network(value)


@pytest.mark.parametrize(
    "value", ["10.0.0.1/33", "300.1.1.1/24", "10.0.0.0/x", "/24", "-oX/24", "-iL/etc/passwd", "http://x.com"]
)
def test_values_with_a_slash_that_are_not_networks_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        host_or_small_network(value)


@pytest.mark.parametrize(
    "value", [*INJECTIONS, "-example.com", "ex_ample.com", "host;id", "http:example.com", "x" * 254, "a b/24"]
)
def test_flags_whitespace_urls_and_junk_are_refused_as_hosts(value: str) -> None:
    with pytest.raises(ValueError, match=r"is not a hostname, an IP address or a CIDR network$"):
        host_or_small_network(value)


@pytest.mark.parametrize(("network", "limit", "accepted"), [("10.0.0.0/24", 256, True), ("10.0.0.0/24", 255, False)])
def test_the_network_limit_is_the_callers_choice(network: str, limit: int, accepted: bool) -> None:
    if accepted:
        assert host_or_network(network, max_addresses=limit) == network
    else:
        with pytest.raises(ValueError, match=f"more than {limit} addresses"):
            host_or_network(network, max_addresses=limit)


@pytest.mark.parametrize(
    "value", ["1", "22", "65535", "1-65535", "80-80", "22,80,443", "8000-8100,9000", ",".join(["1"] * 100)]
)
def test_numeric_port_lists_of_up_to_100_items_are_accepted(value: str) -> None:
    assert port_list(value) == value


@pytest.mark.parametrize(
    "value",
    [*INJECTIONS, "-1024", "-p", "22,", ",22", "22 80", "22\n80", "T:80", "U:53", "http", "full", "123456",
     ",".join(["1"] * 101)],
)  # fmt: skip
def test_flags_protocol_prefixes_and_malformed_port_lists_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match=r"must look like 22,80,8000-8100 \(at most 100 items\)"):
        port_list(value)


@pytest.mark.parametrize(
    ("value", "item"),
    [("0", "0"), ("65536", "65536"), ("80-22", "80-22"), ("0-80", "0-80"), ("1-65536", "1-65536"), ("22,0", "0")],
)
def test_port_zero_ports_over_65535_and_descending_ranges_are_refused(value: str, item: str) -> None:
    with pytest.raises(ValueError, match=rf"^port item '{item}' must be within 1-65535, low end first$"):
        port_list(value)


@pytest.mark.parametrize(
    "value",
    ["example.com", "example.com:8080", "192.0.2.1", "192.0.2.1:443", "2001:db8::1", "[2001:db8::1]:8443",
     "http://example.com", "https://example.com:8443/login?next=/", "http://192.0.2.1/a#b", "_s.example.com"],
)  # fmt: skip
def test_hosts_host_ports_ips_and_http_urls_are_web_targets(value: str) -> None:
    assert web_target(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-oX", "has no valid host or port"),
        ("--script=x", "has no valid host or port"),
        ("-u", "has no valid host or port"),
        ("http://-x.example.com", "has no valid host or port"),
        ("example.com:0", "has no valid host or port"),
        ("https://", "has no valid host or port"),
        ("example.com/path", "with a path must be written as a full http(s) URL"),
        ("example.com?q=1", "with a path must be written as a full http(s) URL"),
        ("ftp://example.com", "must be host[:port] or an http(s) URL without credentials"),
        ("file:///etc/passwd", "must be host[:port] or an http(s) URL without credentials"),
        ("https://user:pw@example.com", "must be host[:port] or an http(s) URL without credentials"),
        ("a b", "must be printable ASCII"),
        ("example.com\nevil.com", "must be printable ASCII"),
        ("", "must be printable ASCII"),
        ("x" * 2049, "must be printable ASCII"),
    ],
)
def test_flags_paths_without_scheme_credentials_bad_ports_and_whitespace_are_not_web_targets(
    value: str, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        web_target(value)


def test_a_web_target_port_over_65535_is_refused() -> None:
    with pytest.raises(ValueError):
        web_target("example.com:99999")


@pytest.mark.parametrize(
    "value", ["http://127.0.0.1:8080/FUZZ", "https://example.com/", "https://example.com/?q=1", "http://[::1]/x"]
)
def test_http_and_https_urls_with_a_host_are_web_urls(value: str) -> None:
    assert web_url(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-u http://x/", "must be printable ASCII"),
        ("https://example.com/\n-x", "must be printable ASCII"),
        ("--script=x", "must be http:// or https:// with a host"),
        ("//x/", "must be http:// or https:// with a host"),
        ("http:///x", "must be http:// or https:// with a host"),
        ("ftp://example.com/", "must be http:// or https:// with a host"),
        ("file:///etc/passwd", "must be http:// or https:// with a host"),
        ("example.com", "must be http:// or https:// with a host"),
    ],
)
def test_urls_that_are_flags_not_http_or_hostless_are_not_web_urls(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        web_url(value)


@pytest.mark.parametrize(("ports", "top_ports"), [(False, False), (True, False), (False, True)])
def test_one_of_two_exclusive_options_or_neither_is_fine(ports: bool, top_ports: bool) -> None:
    not_both(ports=ports, top_ports=top_ports)


def test_two_exclusive_options_together_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"^give ports or top_ports, not both$"):
        not_both(ports=True, top_ports=True)


@pytest.mark.parametrize(
    ("alias", "value"),
    [(DnsName, "-r"), (DomainName, "localhost"), (PortList, "0"), (WebTarget, "-u"), (WebUrl, "ftp://x/")],
)
def test_the_annotated_aliases_refuse_through_pydantic(alias: Any, value: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(alias).validate_python(value)


@pytest.mark.parametrize(("code", "accepted"), [(99, False), (100, True), (599, True), (600, False)])
def test_status_codes_are_bounded_to_100_599(code: int, accepted: bool) -> None:
    adapter: TypeAdapter[int] = TypeAdapter(StatusCode)
    if accepted:
        assert adapter.validate_python(code) == code
    else:
        with pytest.raises(ValidationError):
            adapter.validate_python(code)


@given(st.text(max_size=40))
def test_no_value_any_validator_accepts_can_be_read_as_a_flag_or_split_a_line(text: str) -> None:
    for validator in ARGUMENT_VALIDATORS:
        try:
            validator(text)
        except ValueError:
            continue
        assert not text.startswith("-") and not any(c.isspace() for c in text), validator


def test_lines_end_every_value_with_a_newline() -> None:
    assert lines(("example.com", "192.0.2.0/28")) == "example.com\n192.0.2.0/28\n"


@pytest.mark.parametrize(
    ("value", "items"), [(["a", 1, None], ["a", "1", "None"]), ([], []), ("a", []), (None, []), ({"a": 1}, [])]
)
def test_only_a_json_list_gives_string_items(value: Any, items: list[str]) -> None:
    assert str_items(value) == items


@pytest.mark.parametrize(("value", "port"), [("80", 80), (80, 80), ("0443", 443), ("x", "x"), ("", ""), (None, None)])
def test_a_digit_string_port_becomes_an_int_and_anything_else_is_kept(value: Any, port: Any) -> None:
    assert port_number(value) == port


def test_the_module_defines_no_spec_so_the_catalogue_skips_it() -> None:
    assert not hasattr(validation, "SPEC")


@pytest.mark.parametrize("ports", ["\u0668\u0660", "\uff18\uff10", "2\u00b2"])  # Arabic-Indic, fullwidth, superscript
def test_port_lists_accept_ascii_digits_only(ports: str) -> None:
    with pytest.raises(ValueError):
        validation.port_list(ports)


SMUGGLED = "fe80::1%x\n10.0.0.0-255.0-255.0-255\n169.254.169.254"


@pytest.mark.parametrize(
    "value", [SMUGGLED, "fe80::1%eth0", "fe80::1%x", "192.0.2.1%1", "fe80::%x/64", "caf\u00e9.com"]
)
def test_scope_ids_and_anything_outside_printable_ascii_are_refused_as_hosts(value: str) -> None:
    with pytest.raises(ValueError, match="is not a hostname, an IP address or a CIDR network"):
        host_or_small_network(value)


@pytest.mark.parametrize("value", ["fe80::1%eth0", "[fe80::1%25eth0]:80", "http://[fe80::1%25x]/"])
def test_ipv6_scope_ids_are_refused_in_web_targets(value: str) -> None:
    with pytest.raises(ValueError):
        web_target(value)


@pytest.mark.parametrize("value", ["a.example.com", "fe80::1%x"])
def test_a_scope_id_makes_a_value_no_ip(value: str) -> None:
    assert not is_ip(value)


@pytest.mark.parametrize("brk", ["\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
def test_the_lines_writer_refuses_a_value_holding_any_line_break(brk: str) -> None:
    with pytest.raises(ValueError, match="holds a line break"):
        lines(("192.0.2.1", f"fe80::1%x{brk}10.0.0.0/8"))


@given(st.text(max_size=20))
def test_whatever_the_lines_writer_accepts_reads_back_as_the_same_values(text: str) -> None:
    try:
        written = lines(("a", text, "b"))
    except ValueError:
        return
    assert written.splitlines() == ["a", text, "b"]
