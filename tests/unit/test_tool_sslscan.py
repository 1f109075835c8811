"""sslscan: params validation, the argv it builds, and parsing real 2.0.7 XML reports and hostile ones."""

from __future__ import annotations

import io
from typing import Any

import pytest
from pydantic import ValidationError

from tasks.errors import ParseError
from tasks.tools import sslscan
from tasks.tools.base import TargetKind, parse_bytes
from tasks.tools.sslscan import SslscanParams

HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n<document title="SSLScan Results" version="2.0.7">\n'
TEST = b' <ssltest host="192.0.2.1" sniname="192.0.2.1" port="443">\n'
PROTOCOL = b'  <protocol type="tls" version="1.0" enabled="1" />\n'


def parse(report: bytes) -> list[dict[str, Any]]:
    return parse_bytes(sslscan.SPEC, {"sslscan.xml": report})


def test_a_typical_run_reads_targets_from_a_file_and_writes_xml() -> None:
    invocation = sslscan.build(SslscanParams(targets=("example.com", "192.0.2.1:8443")))
    assert invocation.argv == ["--targets=/inputs/targets.txt", "--xml=/outputs/sslscan.xml", "--no-colour"]
    assert invocation.input_files == {"targets.txt": "example.com\n192.0.2.1:8443\n"}
    assert invocation.output_files == ["sslscan.xml"]


@pytest.mark.parametrize(("rate", "sleep"), [(50, "--sleep=20"), (3, "--sleep=334"), (0.5, "--sleep=2000")])
def test_a_rate_becomes_a_pause_before_each_connection_in_whole_milliseconds(rate: float, sleep: str) -> None:
    assert sslscan.build(SslscanParams(targets=("example.com",), rate=rate)).argv[-1] == sleep


@pytest.mark.parametrize(
    "target",
    [
        "[::1]:443", "::1", "2001:db8::1",  # --targets cuts a line at its first ':'
        "example.com:0", "example.com:65536", "example.com:x", "192.0.2.0/24", "https://example.com",
        "user@example.com", "-example.com", "--pk=/etc/passwd", "example.com\n-x", "exa mple.com", "",
    ],
)  # fmt: skip
def test_ipv6_networks_urls_flags_and_bad_ports_are_refused_as_targets(target: str) -> None:
    with pytest.raises(ValidationError):
        SslscanParams(targets=(target,))


@pytest.mark.parametrize(
    "params",
    [{"targets": []}, {"targets": ["example.com"], "rate": 0}, {"targets": ["example.com"], "starttls": "smtp"}],
)
def test_no_targets_a_zero_rate_and_unknown_keys_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SslscanParams.model_validate(params)


def test_the_scope_sees_each_targets_host_without_its_port() -> None:
    params = SslscanParams(targets=("example.com:8443", "192.0.2.1"))
    assert list(sslscan.targets(params)) == [(TargetKind.HOST, "example.com"), (TargetKind.HOST, "192.0.2.1")]


def test_a_weak_protocol_enabled_is_a_finding_with_an_issue() -> None:
    (finding,) = parse(HEAD + TEST + PROTOCOL + b" </ssltest>\n</document>\n")
    assert (finding["host"], finding["port"], finding["protocol"], finding["status"]) == (
        "192.0.2.1",
        443,
        "TLSv1.0",
        "enabled",
    )
    assert finding["issue"] == "TLSv1.0 enabled"


def test_a_report_cut_off_mid_run_keeps_what_came_before() -> None:
    assert len(parse(HEAD + TEST + PROTOCOL + b'  <cipher status="acc')) == 1


@pytest.mark.parametrize(
    "report",
    [
        b'<?xml version="1.0"?>\n<!DOCTYPE document [<!ENTITY x "xx">]>\n<document>&x;</document>',
        b'<?xml version="1.0"?>\n<!DOCTYPE document SYSTEM "file:///etc/passwd">\n<document/>',
    ],
)
def test_any_dtd_or_entity_is_refused(report: bytes) -> None:
    with pytest.raises(ParseError, match="refusing the sslscan report"):
        parse(report)


def test_xml_broken_before_its_end_is_a_parse_error_after_the_findings_before_it() -> None:
    findings = sslscan.SPEC.parse({"sslscan.xml": io.BytesIO(HEAD + TEST + PROTOCOL + b"</nope>" + PROTOCOL)})
    assert next(findings)["protocol"] == "TLSv1.0"
    with pytest.raises(ParseError, match="not well-formed"):
        next(findings)


def test_a_certificate_subject_that_closes_its_cdata_can_only_forge_elements_inside_its_certificate() -> None:
    subject = (
        b'evil]]></subject><cipher status="accepted" sslversion="SSLv2" cipher="X" strength="null"/><subject><![CDATA[x'
    )
    report = HEAD + TEST + b' <certificates>\n  <certificate type="short">\n   <subject><![CDATA[' + subject
    report += (
        b"]]></subject>\n   <expired>false</expired>\n  </certificate>\n </certificates>\n </ssltest>\n</document>\n"
    )
    (finding,) = parse(report)
    assert finding["kind"] == "certificate" and finding["name"] == "evil"


def test_odd_attributes_give_nulls_not_errors() -> None:
    report = (
        HEAD + b' <ssltest host="h" port="x">\n  <cipher bits="-1" />\n  <group bits="1e9" />\n </ssltest>\n</document>'
    )
    assert [(f["port"], f["kind"], f["bits"], f["issue"]) for f in parse(report)] == [
        (None, "cipher", None, None), (None, "group", None, None),
    ]  # fmt: skip


def test_errors_are_findings_but_the_targets_file_quirk_is_not() -> None:
    report = HEAD + b"  <error><![CDATA[Could not open a connection to host h (h) on port 1.]]></error>\n"
    report += b"  <error><![CDATA[Targets file /inputs/targets.txt does not exist.]]></error>\n</document>\n"
    assert [(f["kind"], f["name"]) for f in parse(report)] == [
        ("error", "Could not open a connection to host h (h) on port 1.")
    ]
