"""Hostile or huge tool outputs: parsers stay lazy, bounded and fail with ParseError, never anything else."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Iterator
from typing import BinaryIO

import pytest

from tasks.errors import ParseError
from tasks.tools import dnsx, ffuf, gobuster, httpx, naabu, nmap, nuclei, sqlmap, sslscan, subfinder, wafw00f, whatweb
from tasks.tools.base import ToolSpec, parse_bytes

MIB = 1024 * 1024
JSONL_LINES = {
    "httpx": b'{"url": "http://192.0.2.1", "status_code": 200}\n',
    "naabu": b'{"ip": "192.0.2.1", "port": 80}\n',
    "nuclei": b'{"template-id": "t", "info": {"severity": "info"}}\n',
    "subfinder": b'{"host": "a.example.com", "input": "example.com"}\n',
    "dnsx": b'{"host": "a.example.com", "a": ["192.0.2.1"]}\n',
    "whatweb": b'{"target": "http://192.0.2.1/", "http_status": 200, "plugins": {"PHP": {"version": ["7.4"]}}}\n',
}
MODULES = {
    module.SPEC.name: module
    for module in (dnsx, ffuf, gobuster, httpx, naabu, nmap, nuclei, sqlmap, sslscan, subfinder, wafw00f, whatweb)
}
JSONL_TOOLS = [MODULES[name].SPEC for name in JSONL_LINES]


def report(spec: ToolSpec) -> str:
    return str(MODULES[spec.name].REPORT_FILE)


class RepeatingStream(io.RawIOBase):
    """A stream of head, then body repeated until size bytes, then tail; it counts the bytes handed out."""

    def __init__(self, head: bytes, body: bytes, tail: bytes, size: int) -> None:
        self.parts = iter([head, *[body] * ((size - len(head) - len(tail)) // len(body)), tail])
        self.pending = b""
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while len(self.pending) < len(buffer):
            part = next(self.parts, None)
            if part is None:
                break
            self.pending += part
        count = min(len(buffer), len(self.pending))
        buffer[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        self.served += count
        return count


def amplifying(spec: ToolSpec, size: int) -> RepeatingStream:
    """A report of size bytes whose every small record is one finding: the shape that amplified before."""
    if spec.name == "ffuf":
        result = b'{"input": {"FUZZ": "a"}, "url": "http://192.0.2.1/a", "status": 200},'
        return RepeatingStream(b'{"results": [', result, b'{"url": "http://x/", "status": 200}]}', size)
    if spec.name == "nmap":
        port = b'<port protocol="tcp" portid="80"><state state="open" reason="syn-ack"/></port>'
        host = b'<host><address addr="192.0.2.1" addrtype="ipv4"/><ports>' + port * 20 + b"</ports></host>\n"
        return RepeatingStream(b"<?xml version='1.0'?>\n<!DOCTYPE nmaprun>\n<nmaprun>", host, b"</nmaprun>", size)
    if spec.name == "sslscan":
        cipher = (
            b'  <cipher status="accepted" sslversion="TLSv1.2" bits="128" cipher="AES128-SHA" strength="strong"/>\n'
        )
        head = b'<?xml version="1.0" encoding="UTF-8"?>\n<document>\n <ssltest host="192.0.2.1" port="443">\n'
        return RepeatingStream(head, cipher, b" </ssltest>\n</document>\n", size)
    if spec.name == "gobuster":
        return RepeatingStream(b"", b"http://192.0.2.1/a          (Status: 200) [Size: 1]\n", b"", size)
    if spec.name == "sqlmap":  # a header, then an injection point a line
        head = b"Target URL,Place,Parameter,Technique(s),Note(s)\n"
        return RepeatingStream(head, b"http://192.0.2.1/a?id=1,GET,id,BU,\n", b"", size)
    if spec.name == "wafw00f":
        return RepeatingStream(
            b"url,detected,firewall,manufacturer\n", b"http://192.0.2.1/,True,Generic,Unknown\n", b"", size
        )
    if spec.name == "whatweb":  # json.rb's array: "[", a site a line with "," lines between, "]"
        return RepeatingStream(b"[\n", JSONL_LINES["whatweb"] + b",\n", JSONL_LINES["whatweb"] + b"]\n", size)
    return RepeatingStream(b"", JSONL_LINES[spec.name], b"", size)


ALL_SPECS = [*JSONL_TOOLS, ffuf.SPEC, nmap.SPEC, sslscan.SPEC, gobuster.SPEC, sqlmap.SPEC, wafw00f.SPEC]
specs = pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.name)


@specs
def test_the_first_finding_of_a_16_mib_report_comes_after_reading_a_small_part_of_it(spec: ToolSpec) -> None:
    stream = amplifying(spec, 16 * MIB)
    findings = spec.parse({report(spec): io.BufferedReader(stream)})
    assert next(findings)
    assert stream.served <= 256 * 1024


@specs
def test_iterating_all_findings_of_a_4_mib_report_holds_little_memory(spec: ToolSpec) -> None:
    stream = io.BufferedReader(amplifying(spec, 4 * MIB))
    tracemalloc.start()
    try:
        count = sum(1 for _ in spec.parse({report(spec): stream}))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count > 10_000
    assert peak < 8 * MIB, f"{spec.name} peaked at {peak / MIB:.1f} MiB"


@pytest.mark.parametrize("spec", JSONL_TOOLS, ids=lambda s: s.name)
def test_json_lines_of_empty_objects_are_no_findings(spec: ToolSpec) -> None:
    assert parse_bytes(spec, {report(spec): b"{}\n" * 10_000}) == []


def test_ffuf_results_without_url_or_status_are_no_findings() -> None:
    report = b'{"results": [{}, {"url": "http://x/a"}, {"status": 200}, {"url": "http://x/b", "status": 200}]}'
    assert [f["url"] for f in parse_bytes(ffuf.SPEC, {"ffuf.json": report})] == ["http://x/b"]


def test_nmap_ports_without_a_numeric_portid_are_no_findings() -> None:
    report = b'<nmaprun><host><address addr="192.0.2.1" addrtype="ipv4"/><ports><port/><port portid="x"/>'
    report += b'<port protocol="tcp" portid="22"/></ports></host></nmaprun>'
    assert [f["port"] for f in parse_bytes(nmap.SPEC, {"nmap.xml": report})] == [22]


def test_a_u0085_in_an_httpx_title_is_part_of_the_title_not_a_line_break() -> None:
    line = '{"url": "http://192.0.2.1", "title": "a\u0085b\u2028c", "status_code": 200}\n'.encode()
    (finding,) = parse_bytes(httpx.SPEC, {"httpx.jsonl": line + line[:20]})
    assert finding["title"] == "a\u0085b\u2028c"


@pytest.mark.parametrize("spec", JSONL_TOOLS, ids=lambda s: s.name)
def test_deeply_nested_json_lines_raise_a_parse_error_after_the_findings_before_them(spec: ToolSpec) -> None:
    deep = b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    findings = spec.parse({report(spec): io.BytesIO(JSONL_LINES[spec.name] + deep + JSONL_LINES[spec.name])})
    assert next(findings)
    with pytest.raises(ParseError, match="nested too deeply"):
        next(findings)


def test_a_deeply_nested_ffuf_report_raises_a_parse_error_without_building_it() -> None:
    deep = b'{"results": [{"url": "http://x/", "status": 200}, {"input": ' + b"[" * 1_000_000
    findings = ffuf.SPEC.parse({"ffuf.json": io.BytesIO(deep)})
    assert next(findings)["url"] == "http://x/"
    with pytest.raises(ParseError, match="deeper than"):
        next(findings)


@pytest.mark.parametrize("result", [b'{"url": ["http://x/"], "status": 200}', b'{"url": "http://x/", "status": "200"}'])
def test_an_ffuf_result_with_a_url_or_status_of_the_wrong_type_is_a_parse_error(result: bytes) -> None:
    with pytest.raises(ParseError, match="wrong type"):
        parse_bytes(ffuf.SPEC, {"ffuf.json": b'{"results": [' + result + b"]}"})


@pytest.mark.parametrize("report", [b"\xff\xfe", b"{]", b'{"results": [{"url": "http://x/", "status": 200}'])
def test_an_ffuf_report_that_is_not_json_or_ends_early_is_a_parse_error(report: bytes) -> None:
    with pytest.raises(ParseError, match=r"not JSON|ends early"):
        parse_bytes(ffuf.SPEC, {"ffuf.json": report})


def test_a_line_that_is_not_json_before_the_last_one_is_a_parse_error_naming_it() -> None:
    findings = naabu.SPEC.parse({"naabu.jsonl": io.BytesIO(b'{"ip": "a", "port": 1}\nnot json\n{"port": 2}\n')})
    assert next(findings)["port"] == 1
    with pytest.raises(ParseError, match="line 2 of the output is not JSON"):
        next(findings)


def test_a_truncated_last_line_followed_by_blank_lines_is_still_tolerated() -> None:
    data = b'{"ip": "a", "port": 1}\n{"ip": "b", "po\n\n  \n'
    assert [f["port"] for f in parse_bytes(naabu.SPEC, {"naabu.jsonl": data})] == [1]


def utf16_report(doctype: str) -> bytes:
    body = '<nmaprun><host><address addr="192.0.2.1" addrtype="ipv4"/><ports>'
    body += '<port protocol="tcp" portid="22"><service name="&x;"/></port></ports></host></nmaprun>'
    return f'<?xml version="1.0" encoding="UTF-16"?>\n{doctype}\n{body}'.encode("utf-16")


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE nmaprun [<!ENTITY x "expanded">]>',
        '<!DOCTYPE nmaprun [<!ENTITY y "yy"><!ENTITY x "&y;&y;&y;&y;">]>',
        '<!DOCTYPE nmaprun SYSTEM "file:///etc/passwd" [<!ENTITY x SYSTEM "file:///etc/hostname">]>',
    ],
)
def test_a_utf16_nmap_report_with_a_dtd_and_entities_is_refused_before_any_entity_expands(doctype: str) -> None:
    with pytest.raises(ParseError, match="refusing the nmap report"):
        parse_bytes(nmap.SPEC, {"nmap.xml": utf16_report(doctype)})


def test_a_utf16_nmap_report_with_nmaps_bare_doctype_parses() -> None:
    report = utf16_report("<!DOCTYPE nmaprun>").replace("&x;".encode("utf-16")[2:], "ssh".encode("utf-16")[2:])
    assert [(f["port"], f["service"]) for f in parse_bytes(nmap.SPEC, {"nmap.xml": report})] == [(22, "ssh")]


def test_parse_errors_are_value_errors_so_callers_catching_value_error_keep_working() -> None:
    assert issubclass(ParseError, ValueError)


def _drain(findings: Iterator[object]) -> int:
    return sum(1 for _ in findings)


@specs
def test_parsing_a_missing_output_file_yields_nothing(spec: ToolSpec) -> None:
    streams: dict[str, BinaryIO] = {}
    assert _drain(spec.parse(streams)) == 0
