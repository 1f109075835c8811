"""gobuster: params validation, the argv it builds, its pace for a rate, and parsing real 3.5.0 result lines."""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tasks.errors import ParseError
from tasks.tools import gobuster
from tasks.tools.base import TargetKind, parse_bytes
from tasks.tools.gobuster import GobusterParams

URL = "https://example.com/app/"


def parse(report: bytes) -> list[dict[str, Any]]:
    return parse_bytes(gobuster.SPEC, {"gobuster.txt": report})


def test_a_typical_run_is_dir_mode_with_the_wordlist_in_a_file_and_full_urls_in_plain_lines() -> None:
    invocation = gobuster.build(GobusterParams(url=URL, wordlist=("admin", "robots.txt")))
    assert invocation.argv == [
        "dir", "-u", URL, "-w", "/inputs/wordlist.txt", "-o", "/outputs/gobuster.txt", "-e", "-q", "-z", "--no-color",
    ]  # fmt: skip
    assert invocation.input_files == {"wordlist.txt": "admin\nrobots.txt\n"}
    assert invocation.output_files == ["gobuster.txt"]


def test_match_codes_empty_the_404_blacklist_and_extensions_and_threads_add_their_flags() -> None:
    params = GobusterParams(url=URL, wordlist=("a",), match_codes=(200, 301), extensions=(".php", "bak"), threads=5)
    assert gobuster.build(params).argv[11:] == ["-s", "200,301", "-b", "", "-x", "php,bak", "-t", "5"]


@pytest.mark.parametrize(
    ("rate", "threads", "expected"),
    [
        (50, None, ["-t", "10", "--delay", "200ms"]),
        (20, None, ["-t", "10", "--delay", "500ms"]),
        (20, 40, ["-t", "20", "--delay", "1000ms"]),
        (2.5, None, ["-t", "2", "--delay", "1000ms"]),
        (0.5, None, ["-t", "1", "--delay", "2000ms"]),
    ],
)
def test_a_rate_becomes_threads_and_a_delay_of_a_whole_fraction_of_a_second(
    rate: float, threads: int | None, expected: list[str]
) -> None:
    pace = gobuster.pace(rate, threads)
    assert pace.argv() == expected
    assert pace.threads * (1000 / pace.delay_ms) <= rate or rate < 1


@given(st.floats(min_value=0.001, max_value=100_000), st.one_of(st.none(), st.integers(1, 100)))
def test_no_pace_starts_more_requests_a_second_than_the_rate(rate: float, threads: int | None) -> None:
    pace = gobuster.pace(rate, threads)
    if rate < 1:
        assert pace.threads == 1 and pace.delay_ms >= 1000 / rate
    else:
        assert 1 <= pace.threads <= (threads or 10) and pace.threads * 1000 / pace.delay_ms <= rate


@pytest.mark.parametrize(
    "params",
    [
        {"url": "ftp://example.com/", "wordlist": ["a"]},
        {"url": "example.com", "wordlist": ["a"]},
        {"url": "https://example.com/?q=", "wordlist": ["a"]},
        {"url": "https://example.com/#x", "wordlist": ["a"]},
        {"url": "https://user:pw@example.com/", "wordlist": ["a"]},
        {"url": "-u https://example.com/", "wordlist": ["a"]},
        {"url": URL, "wordlist": []},
        {"url": URL, "wordlist": ["a b"]},
        {"url": URL, "wordlist": ["#comment"]},
        {"url": URL, "wordlist": ["a\nb"]},
        {"url": URL, "wordlist": ["x" * 257]},
        {"url": URL, "wordlist": ["a"], "match_codes": [99]},
        {"url": URL, "wordlist": ["a"], "extensions": ["php,asp"]},
        {"url": URL, "wordlist": ["a"], "extensions": ["-x"]},
        {"url": URL, "wordlist": ["a"], "threads": 0},
        {"url": URL, "wordlist": ["a"], "follow_redirects": True},
        {"url": URL, "wordlist": ["a"], "headers": ["X: y"]},
    ],
)
def test_bad_urls_words_codes_extensions_and_unknown_keys_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GobusterParams.model_validate(params)


def test_the_scope_sees_the_url_since_a_word_only_ever_extends_its_path() -> None:
    assert list(gobuster.targets(GobusterParams(url=URL, wordlist=("@evil.example",)))) == [(TargetKind.URL, URL)]


def test_a_location_holding_brackets_and_spaces_is_read_whole_as_the_last_field() -> None:
    line = b"http://x/a                    (Status: 302) [Size: 0] [--> /b] [Size: 9] (Status: 200)]\n"
    (finding,) = parse(line)
    assert (finding["url"], finding["status"], finding["size"]) == ("http://x/a", 302, 0)
    assert finding["redirect_location"] == "/b] [Size: 9] (Status: 200)"


def test_a_location_with_invalid_utf8_is_kept_with_replacement_characters() -> None:
    (finding,) = parse(b"http://x/a (Status: 301) [Size: 0] [--> /\xff]\n")
    assert finding["redirect_location"] == "/\ufffd"


def test_a_line_of_another_shape_is_a_parse_error_after_the_findings_before_it() -> None:
    findings = gobuster.SPEC.parse({"gobuster.txt": io.BytesIO(b"http://x/a (Status: 200) [Size: 1]\nError: x\n")})
    assert next(findings)["url"] == "http://x/a"
    with pytest.raises(ParseError, match="line 2 of the gobuster output is not a result"):
        next(findings)


def test_a_last_line_cut_off_mid_write_and_blank_lines_are_skipped() -> None:
    assert [f["status"] for f in parse(b"\nhttp://x/a (Status: 200) [Size: 1]\n\nhttp://x/b (Sta")] == [200]


def test_a_line_longer_than_the_limit_is_refused_without_reading_it_all() -> None:
    with pytest.raises(ParseError, match="longer than"):
        parse(b"http://x/" + b"a" * (5 * 1024 * 1024) + b" (Status: 200)\n")


def test_vhost_mode_with_a_domain_appends_it_and_sends_no_expanded_flag() -> None:
    params = GobusterParams(mode="vhost", url=URL, wordlist=("admin", "api.dev"), domain="example.com")
    assert gobuster.build(params).argv == [
        "vhost", "-u", URL, "-w", "/inputs/wordlist.txt", "-o", "/outputs/gobuster.txt", "-q", "-z", "--no-color",
        "--append-domain", "--domain", "example.com",
    ]  # fmt: skip


def test_vhost_mode_asks_the_urls_server_about_each_name_and_the_scope_reads_the_names_as_domains() -> None:
    params = GobusterParams(mode="vhost", url=URL, wordlist=("admin", "www", "admin"), domain="example.com")
    assert list(gobuster.targets(params)) == [
        (TargetKind.URL, URL), (TargetKind.DOMAIN, "admin.example.com"), (TargetKind.DOMAIN, "www.example.com"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "vhost", "url": URL, "wordlist": ["a"], "match_codes": [200]},
        {"mode": "vhost", "url": URL, "wordlist": ["a"], "extensions": ["php"]},
        {"mode": "vhost", "url": URL, "wordlist": ["a/b"]},
        {"mode": "vhost", "url": URL, "wordlist": ["-a"]},
        {"mode": "vhost", "url": URL, "wordlist": ["a"], "domain": "localhost"},
        {"mode": "dir", "url": URL, "wordlist": ["a"], "domain": "example.com"},
        {"mode": "dns", "url": URL, "wordlist": ["a"]},
    ],
)
def test_options_of_the_other_mode_names_that_are_no_dns_names_and_other_modes_are_refused(
    params: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError):
        GobusterParams.model_validate(params)


def test_a_vhost_line_is_a_finding_with_the_name_and_no_url() -> None:
    (finding,) = parse(b"Found: shop.example.com Status: 302 [Size: 0] [--> /login]\n")
    assert finding == {
        "url": None, "vhost": "shop.example.com", "status": 302, "size": 0, "redirect_location": "/login",
    }  # fmt: skip


def test_a_missed_vhost_line_of_verbose_mode_is_not_a_result() -> None:
    with pytest.raises(ParseError, match="not a result"):
        parse(b"Missed: www.example.com Status: 200 [Size: 12]\n")
