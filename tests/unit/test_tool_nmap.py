"""nmap: params validation, the argv it builds, and parsing real nmap 7.93 XML reports."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tasks.errors import ParseError
from tasks.tools import nmap
from tasks.tools.base import parse_bytes
from tasks.tools.nmap import NmapParams


def test_a_typical_scan_builds_a_connect_scan_argv_with_targets_in_a_file() -> None:
    params = NmapParams(targets=("192.0.2.10", "scanme.example.com"), ports="22,80,8000-8100")
    invocation = nmap.build(params)
    assert invocation.argv == [
        "-sT", "-Pn", "-n", "-oX", "/outputs/nmap.xml", "-iL", "/inputs/targets.txt", "-p", "22,80,8000-8100",
    ]  # fmt: skip
    assert invocation.input_files == {"targets.txt": "192.0.2.10\nscanme.example.com\n"}
    assert invocation.output_files == ["nmap.xml"]


def test_top_ports_and_service_detection_add_their_flags() -> None:
    invocation = nmap.build(NmapParams(targets=("10.0.0.0/24",), top_ports=100, service_detection=True))
    assert invocation.argv[-3:] == ["--top-ports", "100", "-sV"]


def test_without_ports_nmap_keeps_its_default_port_selection() -> None:
    argv = nmap.build(NmapParams(targets=("192.0.2.1",))).argv
    assert "-p" not in argv and "--top-ports" not in argv


@pytest.mark.parametrize(
    "target",
    [
        "192.0.2.1",
        "2001:db8::1",
        "scanme.example.com",
        "localhost",
        "host-1.example.org.",
        "10.0.0.0/16",
        "2001:db8::/112",
    ],
)
def test_hosts_addresses_and_small_networks_are_accepted(target: str) -> None:
    assert NmapParams(targets=(target,)).targets == (target,)


@pytest.mark.parametrize(
    "target",
    ["-oN/etc/passwd", "--script=x", "-", "a b", "a\nb", "example.com\n", "-example.com", "ex_ample.com",
     "10.0.0.0/8", "http://example.com", "", "x" * 254, "300.1.1.1/24", "host;id"],
)  # fmt: skip
def test_flags_whitespace_huge_networks_and_junk_are_refused_as_targets(target: str) -> None:
    with pytest.raises(ValidationError):
        NmapParams(targets=(target,))


@pytest.mark.parametrize("ports", ["22", "1-65535", "22,80,443", "8000-8100,9000", ",".join(["1"] * 100)])
def test_numeric_port_lists_are_accepted(ports: str) -> None:
    assert NmapParams(targets=("192.0.2.1",), ports=ports).ports == ports


@pytest.mark.parametrize(
    "ports",
    [
        "-",
        "-1024",
        "0",
        "65536",
        "80-22",
        "T:80",
        "http",
        "22,",
        "22 80",
        "--script=x",
        ",".join(["1"] * 101),
    ],
)
def test_port_syntax_beyond_plain_numbers_and_ranges_is_refused(ports: str) -> None:
    with pytest.raises(ValidationError):
        NmapParams(targets=("192.0.2.1",), ports=ports)


@pytest.mark.parametrize(
    "params",
    [
        {"targets": []},
        {"targets": ["192.0.2.1"] * 1025},
        {"targets": ["192.0.2.1"], "ports": "22", "top_ports": 10},
        {"targets": ["192.0.2.1"], "top_ports": 0},
        {"targets": ["192.0.2.1"], "scripts": "vuln"},
    ],
)
def test_empty_or_oversized_lists_conflicting_port_choices_and_unknown_keys_are_refused(
    params: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError):
        NmapParams.model_validate(params)


@given(st.text(max_size=40))
def test_no_accepted_target_can_be_read_as_a_flag_or_split_a_line(text: str) -> None:
    try:
        NmapParams(targets=(text,))
    except ValidationError:
        return
    assert not text.startswith("-") and not any(c.isspace() for c in text)


@pytest.mark.parametrize("data", [b"", b"<?xml version='1.0'?>", b"<nmaprun><host><ports><port"])
def test_empty_or_cut_off_reports_give_no_findings_and_never_raise(data: bytes) -> None:
    assert parse_bytes(nmap.SPEC, {"nmap.xml": data}) == []


@pytest.mark.parametrize("data", [b"\x00\xff garbage", b"</nmaprun>", b"<nmaprun><host></ports></host></nmaprun>"])
def test_reports_broken_before_their_end_raise_a_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError, match=r"not well-formed"):
        parse_bytes(nmap.SPEC, {"nmap.xml": data})


def test_a_missing_report_gives_no_findings() -> None:
    assert parse_bytes(nmap.SPEC, {}) == []


@pytest.mark.parametrize(
    "doctype",
    [
        b'<!DOCTYPE nmaprun [<!ENTITY x "boom">]>',
        b'<!DOCTYPE nmaprun SYSTEM "file:///etc/passwd">',
        b'<!DOCTYPE nmaprun>\n<!DOCTYPE other [<!ENTITY a "b">]>',
    ],
)
def test_a_report_declaring_a_dtd_or_entities_is_refused(doctype: bytes) -> None:
    data = b'<?xml version="1.0"?>\n' + doctype + b"\n<nmaprun><host/></nmaprun>"
    with pytest.raises(ParseError, match=r"refusing the nmap report|not well-formed"):
        parse_bytes(nmap.SPEC, {"nmap.xml": data})


def test_ports_without_state_or_service_elements_still_parse() -> None:
    data = b'<nmaprun><host><address addr="2001:db8::5" addrtype="ipv6"/><ports>'
    data += b'<port protocol="tcp" portid="443"/></ports></host></nmaprun>'
    assert parse_bytes(nmap.SPEC, {"nmap.xml": data}) == [
        {"host": "2001:db8::5", "address": "2001:db8::5", "hostname": None, "port": 443, "protocol": "tcp",
         "state": None, "reason": None, "service": None, "product": None, "version": None,
         "extra_info": None},
    ]  # fmt: skip


def test_a_target_smuggling_extra_lines_through_an_ipv6_scope_id_is_refused() -> None:
    with pytest.raises(ValidationError):
        NmapParams(targets=("fe80::1%x\n10.0.0.0-255.0-255.0-255\n169.254.169.254",))
