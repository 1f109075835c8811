"""httpx: params validation, the argv it builds, and parsing its JSON lines (fields of httpx v1.8.1)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tasks.tools import httpx
from tasks.tools.base import parse_bytes
from tasks.tools.httpx import HttpxParams


def test_a_typical_run_builds_argv_with_match_codes_probes_and_the_targets_in_a_file() -> None:
    params = HttpxParams(targets=("example.com", "https://api.example.com:8443/v1"), match_codes=(200, 301))
    invocation = httpx.build(params)
    assert invocation.argv == [
        "-l", "/inputs/targets.txt", "-json", "-o", "/outputs/httpx.jsonl", "-silent", "-duc", "-sc", "-cl",
        "-mc", "200,301",
    ]  # fmt: skip
    assert invocation.input_files == {"targets.txt": "example.com\nhttps://api.example.com:8443/v1\n"}
    assert invocation.output_files == ["httpx.jsonl"]


def test_redirects_are_opt_in() -> None:
    assert httpx.build(HttpxParams(targets=("example.com",), follow_redirects=True)).argv[9:] == ["-fhr"]


@pytest.mark.parametrize("key", ["title", "web_server", "tech_detect"])
def test_the_removed_probe_params_are_refused_saying_what_replaced_them(key: str) -> None:
    with pytest.raises(ValidationError, match="every finding carries title, webserver and tech"):
        HttpxParams.model_validate({"targets": ["example.com"], key: True})


@pytest.mark.parametrize(
    "target",
    ["example.com", "example.com:8080", "192.0.2.1", "192.0.2.1:443", "2001:db8::1", "[2001:db8::1]:8443",
     "http://example.com", "https://example.com:8443/login?next=/", "http://192.0.2.1/a#b", "_s.example.com"],
)  # fmt: skip
def test_hosts_host_ports_ips_and_http_urls_are_accepted(target: str) -> None:
    assert HttpxParams(targets=(target,)).targets == (target,)


@pytest.mark.parametrize(
    "target",
    ["-silent", "-l/etc/passwd", "example.com/path", "ftp://example.com", "https://user:pw@example.com",
     "example.com:0", "example.com:99999", "exa mple.com", "example.com\nevil.com", "http://-x.example.com",
     "https://", "", "x" * 2049, "file:///etc/passwd"],
)  # fmt: skip
def test_flags_paths_without_scheme_credentials_bad_ports_and_whitespace_are_refused(target: str) -> None:
    with pytest.raises(ValidationError):
        HttpxParams(targets=(target,))


@pytest.mark.parametrize(
    "params",
    [
        {"targets": []},
        {"targets": ["example.com"], "match_codes": [600]},
        {"targets": ["example.com"], "match_codes": ["200,301"]},
        {"targets": ["example.com"], "match_codes": [200] * 51},
        {"targets": ["example.com"], "screenshot": True},
    ],
)
def test_bad_match_codes_empty_targets_and_unknown_keys_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        HttpxParams.model_validate(params)


@given(st.text(max_size=40))
def test_no_accepted_target_can_be_read_as_a_flag_or_split_a_line(text: str) -> None:
    try:
        HttpxParams(targets=(text,))
    except ValidationError:
        return
    assert not text.startswith("-") and not any(c.isspace() for c in text)


@pytest.mark.parametrize("outputs", [{}, {"httpx.jsonl": b""}, {"httpx.jsonl": b'{"status_code": 200}\n'}])
def test_empty_missing_or_urlless_output_gives_no_findings(outputs: dict[str, bytes]) -> None:
    assert parse_bytes(httpx.SPEC, outputs) == []
