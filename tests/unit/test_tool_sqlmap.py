"""sqlmap: params that allow detection only, the argv it builds, its rate, and parsing its CSV, hostile lines too."""

from __future__ import annotations

import io
from typing import Any

import pytest
from pydantic import ValidationError

from tasks.errors import ParseError
from tasks.tools import sqlmap
from tasks.tools.base import TargetKind, parse_bytes
from tasks.tools.sqlmap import SqlmapParams

URL = "https://example.com/item?id=1"
HEADER = b"Target URL,Place,Parameter,Technique(s),Note(s)\n"


def parse(report: bytes) -> list[dict[str, Any]]:
    return parse_bytes(sqlmap.SPEC, {"sqlmap.csv": report})


def test_a_typical_run_reads_its_urls_from_a_file_in_batch_mode_at_risk_1_and_never_exploits() -> None:
    invocation = sqlmap.build(SqlmapParams(targets=(URL, "http://192.0.2.1/q?a=1&b=2")))
    assert invocation.argv == [
        "-m", "/inputs/targets.txt", "--results-file=/outputs/sqlmap.csv", "--output-dir=/tmp/sqlmap", "--batch",
        "--answers=extending=N,exploit=N", "--risk=1", "--level=1", "--technique=BEU", "--ignore-redirects",
        "--disable-coloring",
    ]  # fmt: skip
    assert invocation.input_files == {"targets.txt": f"{URL}\nhttp://192.0.2.1/q?a=1&b=2\n"}
    assert invocation.output_files == ["sqlmap.csv"]


def test_techniques_level_and_rate_become_their_options() -> None:
    argv = sqlmap.build(SqlmapParams(targets=(URL,), techniques="BT", level=3, rate=0.5)).argv
    assert {"--technique=BT", "--level=3", "--delay=2"} <= set(argv)


@pytest.mark.parametrize(("rate", "delay"), [(3, "--delay=0.334"), (1000, "--delay=0.001"), (0.001, "--delay=1000")])
def test_a_rate_becomes_a_delay_before_each_request_never_shorter_than_one_over_the_rate(
    rate: float, delay: str
) -> None:
    argv = sqlmap.build(SqlmapParams(targets=(URL,), rate=rate)).argv
    assert argv[-1] == delay and float(delay.split("=")[1]) >= 1 / rate


@pytest.mark.parametrize(
    "params",
    [
        {"targets": ["https://example.com/item"]},  # no parameter to test
        {"targets": ["https://example.com/?"]},
        {"targets": ["ftp://example.com/?id=1"]},
        {"targets": ["-u https://example.com/?id=1"]},
        {"targets": ["https://user:pw@example.com/?id=1"]},
        {"targets": ["https://example.com/?id=1#x"]},
        {"targets": ["https://example.com/?a,b=1"]},  # a name that would move the CSV's fields
        {"targets": ["https://example.com/?id=1 --dump"]},
        {"targets": ["https://example.com/?id=1\n--os-shell"]},
        {"targets": []},
        {"targets": [URL], "techniques": "BB"},
        {"targets": [URL], "techniques": "X"},
        {"targets": [URL], "techniques": ""},
        {"targets": [URL], "level": 6},
        {"targets": [URL], "risk": 3},
        {"targets": [URL], "dump": True},
        {"targets": [URL], "os_shell": True},
        {"targets": [URL], "file_read": "/etc/passwd"},
        {"targets": [URL], "tamper": "space2comment"},
        {"targets": [URL], "proxy": "http://192.0.2.9:8080"},
        {"targets": [URL], "rate": 0},
    ],
)
def test_exploitation_options_bad_urls_and_unknown_keys_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SqlmapParams.model_validate(params)


def test_the_params_hold_nothing_but_urls_techniques_a_level_and_a_rate() -> None:
    assert set(SqlmapParams.model_fields) == {
        "targets", "techniques", "level", "rate", "timeout_seconds", "cache_max_age_seconds", "chunk_size",
    }  # fmt: skip


def test_the_scope_sees_each_url() -> None:
    assert list(sqlmap.targets(SqlmapParams(targets=(URL,)))) == [(TargetKind.URL, URL)]


def test_sqlmap_is_intrusive_and_splits_its_urls_into_chunks() -> None:
    assert sqlmap.SPEC.intrusive and sqlmap.SPEC.chunking is not None and sqlmap.SPEC.chunking.field == "targets"


def test_a_quoted_url_holding_commas_and_a_server_cookie_name_holding_commas_stay_in_their_fields() -> None:
    line = b'"http://x/a?q=1,2",Cookie,sess,ion,id,BEU,false positive or unexploitable\n'
    (finding,) = parse(HEADER + line)
    assert finding == {
        "url": "http://x/a?q=1,2", "place": "Cookie", "parameter": "sess,ion,id", "technique_codes": "BEU",
        "techniques": ["boolean-based blind", "error-based", "UNION query"],
        "notes": ["false positive or unexploitable"],
    }  # fmt: skip


def test_invalid_utf8_is_kept_with_replacement_characters() -> None:
    (finding,) = parse(HEADER + b"http://x/?id=1,Cookie,\xff,B,\n")
    assert finding["parameter"] == "\ufffd"


@pytest.mark.parametrize(
    ("report", "message"),
    [
        (b"url,detected\nhttp://x/?id=1,GET,id,B,\n", "do not start with its header"),
        (HEADER + b"http://x/?id=1,GET,B\n", "has 3 fields"),
        (HEADER + b"http://x/?id=1,GET,id,BX,\n", "unknown techniques"),
        (HEADER + b"http://x/?id=1,GET," + b"a" * (5 * 1024 * 1024) + b",B,\n", "longer than"),
    ],
    ids=["header", "fields", "technique", "long-line"],
)
def test_a_report_of_another_shape_raises_a_parse_error(report: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse(report)


def test_a_bad_line_raises_after_the_findings_before_it() -> None:
    findings = sqlmap.SPEC.parse({"sqlmap.csv": io.BytesIO(HEADER + b"http://x/?a=1,GET,a,B,\nnonsense\n")})
    assert next(findings)["parameter"] == "a"
    with pytest.raises(ParseError, match="line 3"):
        next(findings)


def test_blank_lines_and_a_last_line_cut_off_mid_write_are_skipped_and_no_file_is_no_finding() -> None:
    assert [f["parameter"] for f in parse(HEADER + b"\nhttp://x/?a=1,GET,a,B,\nhttp://x/?b=1,GET,b")] == ["a"]
    assert list(sqlmap.SPEC.parse({})) == []
