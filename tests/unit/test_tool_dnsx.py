"""dnsx: params validation, the argv it builds, and parsing its JSON lines (fields of dnsx v1.2.3)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tasks.tools import dnsx
from tasks.tools.base import parse_bytes
from tasks.tools.dnsx import DnsxParams


def test_a_typical_run_builds_argv_with_record_type_flags_and_the_names_in_a_file() -> None:
    params = DnsxParams(domains=("example.com", "www.example.com"), record_types=("a", "mx", "txt"))
    invocation = dnsx.build(params)
    assert invocation.argv == [
        "-l", "/inputs/domains.txt", "-json", "-o", "/outputs/dnsx.jsonl", "-silent", "-duc", "-omit-raw",
        "-a", "-mx", "-txt",
    ]  # fmt: skip
    assert invocation.input_files == {"domains.txt": "example.com\nwww.example.com\n"}
    assert invocation.output_files == ["dnsx.jsonl"]


def test_resolvers_are_written_to_their_own_file_and_passed_with_r() -> None:
    invocation = dnsx.build(DnsxParams(domains=("example.com",), resolvers=("1.1.1.1", "tcp:9.9.9.9:53")))
    assert invocation.argv[-2:] == ["-r", "/inputs/resolvers.txt"]
    assert invocation.input_files["resolvers.txt"] == "1.1.1.1\ntcp:9.9.9.9:53\n"


def test_the_default_record_type_is_a_and_repeats_are_asked_once() -> None:
    assert dnsx.build(DnsxParams(domains=("example.com",))).argv[-1] == "-a"
    assert dnsx.build(DnsxParams(domains=("example.com",), record_types=("ns", "ns"))).argv.count("-ns") == 1


@pytest.mark.parametrize("domain", ["example.com", "_dmarc.example.com", "localhost", "xn--bcher-kva.example", "a.b."])
def test_dns_names_including_underscore_labels_are_accepted(domain: str) -> None:
    assert DnsxParams(domains=(domain,)).domains == (domain,)


@pytest.mark.parametrize(
    "domain",
    [
        "-silent",
        "-r",
        "exa mple.com",
        "example.com\nevil.com",
        "-a.example.com",
        "a..b",
        "",
        "a" * 64 + ".com",
    ],
)
def test_flags_whitespace_and_malformed_names_are_refused(domain: str) -> None:
    with pytest.raises(ValidationError):
        DnsxParams(domains=(domain,))


@pytest.mark.parametrize(
    "resolver",
    [
        "8.8.8.8",
        "8.8.8.8:5353",
        "udp:1.1.1.1",
        "dot:9.9.9.9",
        "2606:4700::1111",
        "[2606:4700::1111]:53",
        "tcp:[::1]:53",
    ],
)
def test_ip_resolvers_with_optional_protocol_and_port_are_accepted(resolver: str) -> None:
    assert DnsxParams(domains=("example.com",), resolvers=(resolver,)).resolvers == (resolver,)


@pytest.mark.parametrize(
    "resolver",
    [
        "dns.google",
        "-r",
        "8.8.8.8:0",
        "8.8.8.8:70000",
        "doh:https://x/dns-query",
        "1.1.1.1\n2.2.2.2",
        "[::1]",
    ],
)
def test_named_malformed_or_doh_resolvers_are_refused(resolver: str) -> None:
    with pytest.raises(ValidationError):
        DnsxParams(domains=("example.com",), resolvers=(resolver,))


@pytest.mark.parametrize(
    "params",
    [
        {"domains": []},
        {"domains": ["example.com"], "record_types": []},
        {"domains": ["example.com"], "record_types": ["axfr"]},
        {"domains": ["example.com"], "record_types": ["A"]},
        {"domains": ["example.com"], "resolvers": ["1.1.1.1"] * 101},
        {"domains": ["example.com"], "wordlist": ["www"]},
    ],
)
def test_empty_lists_unknown_record_types_oversized_lists_and_unknown_keys_are_refused(
    params: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError):
        DnsxParams.model_validate(params)


@given(st.text(max_size=40))
def test_no_accepted_name_can_be_read_as_a_flag_or_split_a_line(text: str) -> None:
    try:
        DnsxParams(domains=(text,))
    except ValidationError:
        return
    assert not text.startswith("-") and not any(c.isspace() for c in text)


@pytest.mark.parametrize("outputs", [{}, {"dnsx.jsonl": b""}, {"dnsx.jsonl": b"\n\n"}, {"other.jsonl": b"{}"}])
def test_empty_or_missing_output_gives_no_findings(outputs: dict[str, bytes]) -> None:
    assert parse_bytes(dnsx.SPEC, outputs) == []


def test_a_soa_owned_by_the_zone_above_is_not_the_hosts_record_but_names_the_zone() -> None:
    line = b'{"host": "www.example.com", "resolver": ["8.8.8.8:53", "1.1.1.1:53"], "a": ["192.0.2.1"], '
    line += b'"soa": [{"name": "example.com", "ns": "ns1.example.com"}], "status_code": "NOERROR"}\n'
    (finding,) = parse_bytes(dnsx.SPEC, {"dnsx.jsonl": line})
    assert (finding["record_type"], finding["zone"], finding["resolver"]) == ("a", "example.com", "1.1.1.1:53")


def test_a_hosts_own_soa_matches_without_case_or_trailing_dot() -> None:
    line = b'{"host": "Example.com.", "soa": [{"name": "example.com", "ns": "ns1"}]}\n'
    (finding,) = parse_bytes(dnsx.SPEC, {"dnsx.jsonl": line})
    assert finding["record_type"] == "soa" and finding["zone"] == "example.com"
