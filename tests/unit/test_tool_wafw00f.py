"""wafw00f: params validation, the argv it builds (no redirects, no rate), and parsing its CSV, hostile lines too."""

from __future__ import annotations

import io
from typing import Any

import pytest
from pydantic import ValidationError

from tasks.errors import ParseError
from tasks.tools import wafw00f
from tasks.tools.base import TargetKind, parse_bytes
from tasks.tools.wafw00f import Wafw00fParams

URL = "https://example.com/"
HEADER = b"url,detected,firewall,manufacturer\n"


def parse(report: bytes) -> list[dict[str, Any]]:
    return parse_bytes(wafw00f.SPEC, {"wafw00f.csv": report})


def test_a_typical_run_reads_its_urls_from_a_file_writes_csv_and_follows_no_redirect() -> None:
    invocation = wafw00f.build(Wafw00fParams(targets=(URL, "http://192.0.2.1:8080/app")))
    assert invocation.argv == ["-i", "/inputs/targets.txt", "-o", "/outputs/wafw00f.csv", "-r"]
    assert invocation.input_files == {"targets.txt": f"{URL}\nhttp://192.0.2.1:8080/app\n"}
    assert invocation.output_files == ["wafw00f.csv"]


def test_find_all_adds_its_flag() -> None:
    assert wafw00f.build(Wafw00fParams(targets=(URL,), find_all=True)).argv[-1] == "-a"


@pytest.mark.parametrize(
    "params",
    [
        {"targets": ["example.com"]},  # wafw00f would prefix https:// and guess
        {"targets": ["ftp://example.com/"]},
        {"targets": ["-p http://192.0.2.9:8080"]},
        {"targets": ["https://user:pw@example.com/"]},
        {"targets": ["https://example.com/ -a"]},
        {"targets": ["https://example.com/\nhttps://evil.example/"]},
        {"targets": []},
        {"targets": [URL], "proxy": "http://192.0.2.9:8080"},
        {"targets": [URL], "headers": "/etc/passwd"},
        {"targets": [URL], "follow_redirects": True},
        {"targets": [URL], "rate": 5},
    ],
)
def test_bad_urls_and_unknown_keys_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Wafw00fParams.model_validate(params)


def test_the_scope_sees_each_url() -> None:
    assert list(wafw00f.targets(Wafw00fParams(targets=(URL,)))) == [(TargetKind.URL, URL)]


def test_wafw00f_is_not_intrusive_and_takes_no_rate() -> None:
    assert not wafw00f.SPEC.intrusive and wafw00f.SPEC.rate_param is None


def test_a_named_waf_the_generic_detection_and_nothing_found_are_told_apart() -> None:
    report = (
        HEADER
        + b"http://a/,True,Cloudflare,Cloudflare Inc.\nhttp://b/,True,Generic,Unknown\nhttp://c/,False,None,None\n"
    )
    assert [(f["detected"], f["firewall"], f["manufacturer"], f["generic"]) for f in parse(report)] == [
        (True, "Cloudflare", "Cloudflare Inc.", False), (True, "Generic", "Unknown", True), (False, None, None, False),
    ]  # fmt: skip


def test_quoted_fields_with_commas_and_invalid_utf8_are_read_whole() -> None:
    (finding,) = parse(HEADER + b'http://a/,True,"Shield, Pro",\xff Inc.\n')
    assert (finding["firewall"], finding["manufacturer"]) == ("Shield, Pro", "\ufffd Inc.")


@pytest.mark.parametrize(
    ("report", "message"),
    [
        (b"url,waf\nhttp://a/,True,X,Y\n", "do not start with its header"),
        (HEADER + b"http://a/,True,X\n", "is not url,detected"),
        (HEADER + b"http://a/,True,X,Y,Z\n", "is not url,detected"),
        (HEADER + b"http://a/,yes,X,Y\n", "is not url,detected"),
        (HEADER + b"http://a/,True," + b"a" * (5 * 1024 * 1024) + b",Y\n", "longer than"),
    ],
    ids=["header", "too-few", "too-many", "not-a-boolean", "long-line"],
)
def test_a_report_of_another_shape_raises_a_parse_error(report: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse(report)


def test_a_bad_line_raises_after_the_findings_before_it() -> None:
    findings = wafw00f.SPEC.parse({"wafw00f.csv": io.BytesIO(HEADER + b"http://a/,False,None,None\nnonsense\n")})
    assert next(findings)["url"] == "http://a/"
    with pytest.raises(ParseError, match="line 3"):
        next(findings)


def test_an_empty_file_a_missing_one_and_a_cut_off_last_line_give_what_was_complete() -> None:
    assert parse(b"") == [] and list(wafw00f.SPEC.parse({})) == []
    assert [f["url"] for f in parse(HEADER + b"http://a/,False,None,None\nhttp://b/,Tr")] == ["http://a/"]
