"""naabu: params validation, the argv it builds, and parsing its JSON lines (fields of naabu v2.6.1)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tasks.tools import naabu
from tasks.tools.base import parse_bytes
from tasks.tools.naabu import NaabuParams


def test_a_typical_run_builds_a_connect_scan_argv_with_the_hosts_in_a_file() -> None:
    invocation = naabu.build(NaabuParams(hosts=("scanme.example.com", "192.0.2.0/28"), ports="22,80,443,8000-8100"))
    assert invocation.argv == [
        "-list", "/inputs/hosts.txt", "-json", "-o", "/outputs/naabu.jsonl", "-silent", "-duc", "-s", "c",
        "-p", "22,80,443,8000-8100",
    ]  # fmt: skip
    assert invocation.input_files == {"hosts.txt": "scanme.example.com\n192.0.2.0/28\n"}
    assert invocation.output_files == ["naabu.jsonl"]


def test_top_ports_and_rate_add_their_flags() -> None:
    argv = naabu.build(NaabuParams(hosts=("192.0.2.1",), top_ports="1000", rate=500)).argv
    assert argv[9:] == ["-tp", "1000", "-rate", "500"]


@pytest.mark.parametrize("host", ["192.0.2.1", "2001:db8::1", "scanme.example.com", "10.0.0.0/16", "2001:db8::/112"])
def test_hosts_addresses_and_small_networks_are_accepted(host: str) -> None:
    assert NaabuParams(hosts=(host,)).hosts == (host,)


@pytest.mark.parametrize(
    "host", ["-p", "-exclude-hosts", "10.0.0.0/8", "a b", "host\n-x", "http://example.com", "", "10.0.0.1/33"]
)
def test_flags_huge_networks_urls_and_whitespace_are_refused_as_hosts(host: str) -> None:
    with pytest.raises(ValidationError):
        NaabuParams(hosts=(host,))


@pytest.mark.parametrize("ports", ["-", "0", "65536", "443-80", "u:53", "full", "80,", "80 443", "-p"])
def test_port_syntax_beyond_plain_numbers_and_ranges_is_refused(ports: str) -> None:
    with pytest.raises(ValidationError):
        NaabuParams(hosts=("192.0.2.1",), ports=ports)


@pytest.mark.parametrize(
    "params",
    [
        {"hosts": []},
        {"hosts": ["192.0.2.1"], "ports": "22", "top_ports": "100"},
        {"hosts": ["192.0.2.1"], "top_ports": "10"},
        {"hosts": ["192.0.2.1"], "rate": 0},
        {"hosts": ["192.0.2.1"], "scan_type": "s"},
    ],
)
def test_conflicting_port_choices_bad_top_ports_rates_and_unknown_keys_are_refused(
    params: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError):
        NaabuParams.model_validate(params)


@given(st.text(max_size=40))
def test_no_accepted_port_list_can_be_read_as_a_flag(text: str) -> None:
    try:
        NaabuParams(hosts=("192.0.2.1",), ports=text)
    except ValidationError:
        return
    assert text[:1].isdigit() and not any(c.isspace() for c in text)


@pytest.mark.parametrize("outputs", [{}, {"naabu.jsonl": b""}, {"naabu.jsonl": b'{"ip": "192.0.2.1"}\n'}])
def test_empty_missing_or_portless_output_gives_no_findings(outputs: dict[str, bytes]) -> None:
    assert parse_bytes(naabu.SPEC, outputs) == []


def test_a_host_smuggling_extra_lines_through_an_ipv6_scope_id_is_refused() -> None:
    with pytest.raises(ValidationError):
        NaabuParams(hosts=("fe80::1%x\n10.0.0.0-255.0-255.0-255\n169.254.169.254",))


def test_naabu_runs_with_tls_detection_switched_on_by_its_environment() -> None:
    assert naabu.SPEC.environment == {"ENABLE_TLS_DETECTION": "true"}


def test_a_false_tls_or_missing_host_reads_as_false_and_the_ip() -> None:
    (finding,) = parse_bytes(naabu.SPEC, {"naabu.jsonl": b'{"ip": "192.0.2.1", "port": 80, "protocol": "tcp"}\n'})
    assert finding == {"host": "192.0.2.1", "ip": "192.0.2.1", "port": 80, "protocol": "tcp", "tls": False}
