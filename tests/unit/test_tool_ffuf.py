"""ffuf: params validation, the argv it builds, and parsing real 1.1.0 and documented 2.x JSON reports."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tasks.tools import ffuf
from tasks.tools.base import parse_bytes
from tasks.tools.ffuf import FfufParams

URL = "https://example.com/FUZZ"


def test_a_typical_run_builds_argv_with_the_wordlist_in_a_file_and_a_json_report() -> None:
    params = FfufParams(url=URL, wordlist=("admin", "robots.txt"), match_codes=(200, 301))
    invocation = ffuf.build(params)
    assert invocation.argv[:4] == ["-u", URL, "-w", "/inputs/wordlist.txt"]
    assert invocation.argv[4:] == ["-of", "json", "-o", "/outputs/ffuf.json", "-s", "-mc", "200,301"]
    assert invocation.input_files == {"wordlist.txt": "admin\nrobots.txt\n"}
    assert invocation.output_files == ["ffuf.json"]


def test_extensions_threads_and_redirects_add_their_flags() -> None:
    params = FfufParams(url=URL, wordlist=("a",), extensions=("php", ".bak"), threads=5, follow_redirects=True)
    assert ffuf.build(params).argv[9:] == ["-e", ".php,.bak", "-t", "5", "-r"]


def test_the_argv_never_asks_for_noninteractive_which_ffuf_1_1_0_rejects() -> None:
    assert "-noninteractive" not in ffuf.build(FfufParams(url=URL, wordlist=("a",))).argv


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/FUZZ",
        "https://example.com/FUZZ.php",
        "https://example.com/?q=FUZZ",
        "http://[::1]/FUZZ",
    ],
)
def test_http_and_https_urls_with_fuzz_are_accepted(url: str) -> None:
    assert FfufParams(url=url, wordlist=("a",)).url == url


@pytest.mark.parametrize(
    "url",
    ["https://example.com/", "ftp://example.com/FUZZ", "file:///etc/FUZZ", "-u http://x/FUZZ", "//x/FUZZ",
     "http:///FUZZ", "https://example.com/FUZZ\n-x", "https://exa mple.com/FUZZ", "FUZZ", ""],
)  # fmt: skip
def test_urls_without_fuzz_or_http_or_with_whitespace_are_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        FfufParams(url=url, wordlist=("a",))


@pytest.mark.parametrize(
    "params",
    [
        {"url": URL, "wordlist": []},
        {"url": URL, "wordlist": ["a b"]},
        {"url": URL, "wordlist": ["a\nb"]},
        {"url": URL, "wordlist": ["x" * 257]},
        {"url": URL, "wordlist": ["a"], "match_codes": [99]},
        {"url": URL, "wordlist": ["a"], "match_codes": []},
        {"url": URL, "wordlist": ["a"], "extensions": ["-x"]},
        {"url": URL, "wordlist": ["a"], "extensions": [".php,.asp"]},
        {"url": URL, "wordlist": ["a"], "threads": 0},
        {"url": URL, "wordlist": ["a"], "threads": 101},
        {"url": URL, "wordlist": ["a"], "headers": ["X: y"]},
    ],
)
def test_bad_words_codes_extensions_threads_and_unknown_keys_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FfufParams.model_validate(params)


@given(st.text(max_size=30))
def test_no_accepted_word_can_split_a_wordlist_line(word: str) -> None:
    try:
        FfufParams(url=URL, wordlist=(word,))
    except ValidationError:
        return
    assert "\n" not in word and "\r" not in word and word.strip() == word


@pytest.mark.parametrize(
    "data", [b"", b" \n", b"null", b"[]", b'{"results": null}', b'{"results": [1, "x", null]}', b'{"results": [{}]}']
)
def test_empty_or_odd_json_and_entries_without_url_or_status_give_no_findings(data: bytes) -> None:
    assert parse_bytes(ffuf.SPEC, {"ffuf.json": data}) == []


def test_a_missing_report_gives_no_findings() -> None:
    assert parse_bytes(ffuf.SPEC, {}) == []


def test_a_result_without_input_keeps_its_other_fields() -> None:
    findings = parse_bytes(
        ffuf.SPEC, {"ffuf.json": b'{"results": [{"url": "http://x/a", "status": 200, "input": "a"}]}'}
    )
    assert findings[0]["input"] is None and findings[0]["url"] == "http://x/a" and findings[0]["status"] == 200


@pytest.mark.parametrize(
    ("url", "place"),
    [
        ("http://FUZZ/", "host or port"),
        ("http://FUZZ.example.com/x", "host or port"),
        ("http://example.com:FUZZ/", "host or port"),
        ("http://user:FUZZ@example.com/FUZZ", "user info"),
        ("http://example.com/#FUZZ", "fragment"),
    ],
)
def test_fuzz_outside_the_path_and_query_is_refused_naming_where(url: str, place: str) -> None:
    with pytest.raises(ValidationError, match=f"not in its {place}"):
        FfufParams(url=url, wordlist=("169.254.169.254",))


@pytest.mark.parametrize("url", ["http://FUZZ/", "http://10.0.0.5:FUZZ/", "http://FUZZ.example.com/FUZZ"])
def test_fuzz_in_the_host_or_port_is_accepted_only_with_fuzz_host(url: str) -> None:
    assert FfufParams(url=url, wordlist=("a",), fuzz_host=True).url == url


def test_fuzz_host_never_allows_fuzz_in_user_info() -> None:
    with pytest.raises(ValidationError, match="user info"):
        FfufParams(url="http://FUZZ@example.com/", wordlist=("a",), fuzz_host=True)


def test_the_fuzz_host_field_says_every_word_is_checked_against_the_scope() -> None:
    description = FfufParams.model_fields["fuzz_host"].description or ""
    assert "the worker checks every word" in description and "scope" in description


@pytest.mark.parametrize("word", ["a\x85b", "a\u2028b", "a\x9bb"])
def test_words_with_unicode_line_breaks_or_c1_controls_are_refused(word: str) -> None:
    with pytest.raises(ValidationError):
        FfufParams(url=URL, wordlist=(word,))
