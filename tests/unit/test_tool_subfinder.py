"""subfinder: params validation, the argv it builds, and parsing its JSON lines (fields of v2.11)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tasks.tools import subfinder
from tasks.tools.base import parse_bytes
from tasks.tools.subfinder import SubfinderParams


def test_a_typical_run_builds_argv_with_json_lines_and_the_domains_in_a_file() -> None:
    invocation = subfinder.build(SubfinderParams(domains=("example.com", "example.org")))
    assert invocation.argv == [
        "-dL", "/inputs/domains.txt", "-oJ", "-o", "/outputs/subfinder.jsonl", "-silent", "-duc",
    ]  # fmt: skip
    assert invocation.input_files == {"domains.txt": "example.com\nexample.org\n"}
    assert invocation.output_files == ["subfinder.jsonl"]


@pytest.mark.parametrize(
    ("extra", "tail"),
    [
        ({"sources": ["crtsh", "alienvault"]}, ["-s", "crtsh,alienvault"]),
        ({"all_sources": True}, ["-all"]),
        ({"max_time_minutes": 5}, ["-max-time", "5"]),
    ],
)
def test_sources_all_sources_and_max_time_add_their_flags(extra: dict[str, Any], tail: list[str]) -> None:
    params = SubfinderParams.model_validate({"domains": ["example.com"], **extra})
    assert subfinder.build(params).argv[7:] == tail


@pytest.mark.parametrize("domain", ["example.com", "sub.example.co.uk", "xn--bcher-kva.example", "example.com."])
def test_registrable_domain_names_are_accepted(domain: str) -> None:
    assert SubfinderParams(domains=(domain,)).domains == (domain,)


@pytest.mark.parametrize(
    "domain",
    ["-all", "localhost", "exa mple.com", "example.com\n-x", "-example.com", "*.example.com", "", "a..com"],
)
def test_flags_single_labels_wildcards_and_whitespace_are_refused(domain: str) -> None:
    with pytest.raises(ValidationError):
        SubfinderParams(domains=(domain,))


@pytest.mark.parametrize(
    "params",
    [
        {"domains": []},
        {"domains": ["example.com"] * 1001},
        {"domains": ["example.com"], "sources": ["-crtsh"]},
        {"domains": ["example.com"], "sources": ["crtsh,github"]},
        {"domains": ["example.com"], "sources": ["crtsh"], "all_sources": True},
        {"domains": ["example.com"], "max_time_minutes": 0},
        {"domains": ["example.com"], "provider_config": "/etc/passwd"},
    ],
)
def test_bad_sources_conflicting_choices_limits_and_unknown_keys_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SubfinderParams.model_validate(params)


@given(st.text(max_size=40))
def test_no_accepted_domain_can_be_read_as_a_flag_or_split_a_line(text: str) -> None:
    try:
        SubfinderParams(domains=(text,))
    except ValidationError:
        return
    assert not text.startswith("-") and not any(c.isspace() for c in text)


@pytest.mark.parametrize("outputs", [{}, {"subfinder.jsonl": b""}, {"subfinder.jsonl": b'{"input": "x.com"}\n'}])
def test_empty_missing_or_hostless_output_gives_no_findings(outputs: dict[str, bytes]) -> None:
    assert parse_bytes(subfinder.SPEC, outputs) == []
