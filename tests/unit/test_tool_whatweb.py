"""whatweb: params validation, the argv it builds, its pace for a rate, and parsing real 0.5.5 JSON logs."""

from __future__ import annotations

import io
from typing import Any

import pytest
from pydantic import ValidationError

from tasks.errors import ParseError
from tasks.tools import whatweb
from tasks.tools.base import parse_bytes
from tasks.tools.whatweb import WhatwebParams

SITE = b'{"target":"http://192.0.2.1/","http_status":200,"plugins":{"PHP":{"version":["7.4.3"]}}}\n'


def parse(report: bytes) -> list[dict[str, Any]]:
    return parse_bytes(whatweb.SPEC, {"whatweb.json": report})


def test_a_typical_run_reads_targets_from_a_file_logs_json_and_never_follows_redirects() -> None:
    invocation = whatweb.build(WhatwebParams(targets=("https://example.com/", "http://192.0.2.1:8080/")))
    assert invocation.argv == [
        "-i", "/inputs/targets.txt", "--log-json", "/outputs/whatweb.json", "-q", "--color=never",
        "-a", "1", "--follow-redirect=never",
    ]  # fmt: skip
    assert invocation.input_files == {"targets.txt": "https://example.com/\nhttp://192.0.2.1:8080/\n"}
    assert invocation.output_files == ["whatweb.json"]


def test_following_redirects_keeps_them_on_the_same_host_and_aggression_3_is_passed() -> None:
    argv = whatweb.build(WhatwebParams(targets=("https://example.com/",), follow_redirects=True, aggression=3)).argv
    assert argv[6:] == ["-a", "3", "--follow-redirect=same-site"]


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        (50, ["--max-threads", "50", "--wait=1"]),
        (2.9, ["--max-threads", "2", "--wait=1"]),
        (1, ["--max-threads", "1", "--wait=1"]),
        (0.5, ["--max-threads", "1", "--wait=2"]),
        (0.3, ["--max-threads", "1", "--wait=4"]),
        (100, ["--max-threads", "100", "--wait=1"]),
    ],
)
def test_a_rate_becomes_threads_that_each_wait_whole_seconds_never_more_requests_a_second(
    rate: float, expected: list[str]
) -> None:
    pace = whatweb.pace(rate)
    assert pace.argv() == expected
    assert pace.threads / pace.wait_seconds <= rate


@pytest.mark.parametrize(
    "target",
    [
        "example.com",  # whatweb would try it as a file first
        "/etc/passwd",
        "127.0.0.1",
        "192.0.2.0/24",  # expanded by whatweb as CIDR
        "192.0.2.1-5",
        "file:///etc/passwd",
        "ftp://example.com/",
        "-i/etc/passwd",
        "http://example.com/\n-x",
        "http://exa mple.com/",
        "",
    ],
)
def test_anything_but_an_absolute_http_url_is_refused_as_a_target(target: str) -> None:
    with pytest.raises(ValidationError):
        WhatwebParams(targets=(target,))


@pytest.mark.parametrize(
    "params",
    [
        {"targets": []},
        {"targets": ["https://example.com/"], "aggression": 4},
        {"targets": ["https://example.com/"], "aggression": "1"},
        {"targets": ["https://example.com/"], "rate": 0},
        {"targets": ["https://example.com/"], "rate": 101},
        {"targets": ["https://example.com/"], "plugins": ["+/tmp/x.rb"]},
        {"targets": ["https://example.com/"], "user_agent": "x"},
    ],
)
def test_bad_aggression_rates_and_unknown_keys_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WhatwebParams.model_validate(params)


def test_each_matched_plugin_of_a_site_is_one_finding() -> None:
    (finding,) = parse(b"[\n" + SITE + b"]\n")
    assert finding["url"] == "http://192.0.2.1/" and finding["plugin"] == "PHP" and finding["version"] == ["7.4.3"]
    assert finding["certainty"] == 100 and finding["string"] == []


def test_a_site_no_plugin_matched_is_one_finding_with_plugin_null() -> None:
    report = (
        b'[\n{"target":"http://192.0.2.1/","http_status":404,"plugins":{}}\n,\n{"target":"http://x/","plugins":7}\n]\n'
    )
    assert [(f["url"], f["status"], f["plugin"]) for f in parse(report)] == [
        ("http://192.0.2.1/", 404, None), ("http://x/", None, None),
    ]  # fmt: skip


def test_plugin_values_of_odd_types_become_lists_of_strings_or_nothing() -> None:
    record = b'{"target":"http://x/","http_status":200,"plugins":{"A":{"version":[1,null],"os":"x","certainty":"9"},'
    record += b'"B":[1],"C":null}}\n'
    (finding,) = parse(record)
    assert (finding["plugin"], finding["version"], finding["os"], finding["certainty"]) == (
        "A",
        ["1", "None"],
        [],
        None,
    )


@pytest.mark.parametrize("record", [b'{"target":["http://x/"]}', b'{"target":"http://x/","http_status":"200"}'])
def test_a_site_with_a_target_or_status_of_the_wrong_type_is_a_parse_error(record: bytes) -> None:
    with pytest.raises(ParseError, match="wrong type"):
        parse(b"[\n" + record + b"\n]\n")


def test_a_line_that_is_not_json_before_the_last_is_a_parse_error_after_the_sites_before_it() -> None:
    findings = whatweb.SPEC.parse({"whatweb.json": io.BytesIO(b"[\n" + SITE + b",\n[1,\n" + SITE)})
    assert next(findings)["plugin"] == "PHP"
    with pytest.raises(ParseError, match="line 4 of the output is not JSON"):
        next(findings)


def test_a_title_holding_unicode_line_separators_stays_in_its_one_site() -> None:
    record = '{"target":"http://x/","http_status":200,"plugins":{"Title":{"string":["a\u2028b\u0085c"]}}}\n'
    (finding,) = parse(b"[\n" + record.encode() + b"]\n")
    assert finding["string"] == ["a\u2028b\u0085c"]


def test_a_log_cut_off_mid_site_keeps_the_complete_sites() -> None:
    assert [f["plugin"] for f in parse(b"[\n" + SITE + b",\n" + SITE[:30])] == ["PHP"]
