"""nuclei: params validation, the argv it builds, and parsing its JSON lines (fields of nuclei v3)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tasks.tools import nuclei
from tasks.tools.base import parse_bytes
from tasks.tools.nuclei import NucleiParams


def test_a_typical_run_uses_the_shipped_templates_directory_and_a_severity_filter() -> None:
    invocation = nuclei.build(NucleiParams(targets=("https://example.com",), severities=("high", "critical")))
    assert invocation.argv == [
        "-l", "/inputs/targets.txt", "-jsonl", "-o", "/outputs/nuclei.jsonl", "-silent",
        "-disable-update-check", "-omit-raw", "-omit-template", "-dr", "-t", "/inputs/templates/",
        "-s", "high,critical", "-no-interactsh",
    ]  # fmt: skip
    assert invocation.input_files == {"targets.txt": "https://example.com\n"}
    assert invocation.output_files == ["nuclei.jsonl"]


def test_named_templates_are_each_passed_with_t_under_the_templates_directory() -> None:
    params = NucleiParams(targets=("example.com",), templates=("cves/CVE-2021-41773.yaml", "dns/caa.yaml"))
    argv = nuclei.build(params).argv
    assert argv[10:14] == [
        "-t",
        "/inputs/templates/cves/CVE-2021-41773.yaml",
        "-t",
        "/inputs/templates/dns/caa.yaml",
    ]


def test_interactsh_is_off_unless_asked_for() -> None:
    assert "-no-interactsh" not in nuclei.build(NucleiParams(targets=("example.com",), interactsh=True)).argv


@pytest.mark.parametrize("template", ["a.yaml", "cves/2021/CVE-2021-1.yaml", "x_y-z.v2.yaml", "A/B/C/D/e.yaml"])
def test_relative_yaml_paths_are_accepted_as_templates(template: str) -> None:
    assert NucleiParams(targets=("example.com",), templates=(template,)).templates == (template,)


@pytest.mark.parametrize(
    "template",
    ["../etc/passwd.yaml", "a/../../b.yaml", "/etc/x.yaml", "-t.yaml", ".hidden.yaml", "a.json", "a,b.yaml",
     "a b.yaml", "a/b/c/d/e/f.yaml", "https://evil.example/t.yaml", "a..yaml/../x.yaml", ""],
)  # fmt: skip
def test_paths_that_escape_the_templates_directory_or_read_as_flags_are_refused(template: str) -> None:
    with pytest.raises(ValidationError):
        NucleiParams(targets=("example.com",), templates=(template,))


@pytest.mark.parametrize(
    "target", ["-u", "example.com/x", "ftp://example.com", "https://u:p@example.com", "a\nb", "x:0", ""]
)
def test_flags_credentials_and_malformed_targets_are_refused(target: str) -> None:
    with pytest.raises(ValidationError):
        NucleiParams(targets=(target,))


@pytest.mark.parametrize(
    "params",
    [
        {"targets": []},
        {"targets": ["example.com"], "severities": ["severe"]},
        {"targets": ["example.com"], "severities": ["HIGH"]},
        {"targets": ["example.com"], "headless": True},
    ],
)
def test_unknown_severities_empty_targets_and_unknown_keys_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        NucleiParams.model_validate(params)


@given(st.text(max_size=40))
def test_no_accepted_template_can_leave_the_templates_directory_or_read_as_a_flag(text: str) -> None:
    try:
        NucleiParams(targets=("example.com",), templates=(text,))
    except ValidationError:
        return
    assert ".." not in text.split("/") and not text.startswith(("-", "/")) and "," not in text


@pytest.mark.parametrize(
    "outputs",
    [{}, {"nuclei.jsonl": b""}, {"nuclei.jsonl": b'{"info": {"severity": "high"}}\n'}],
)
def test_empty_missing_or_templateless_output_gives_no_findings(outputs: dict[str, bytes]) -> None:
    assert parse_bytes(nuclei.SPEC, outputs) == []


def test_a_line_without_info_still_gives_a_finding() -> None:
    (finding,) = parse_bytes(
        nuclei.SPEC, {"nuclei.jsonl": b'{"template-id": "t", "info": "odd", "extracted-results": "x"}\n'}
    )
    assert finding["name"] is None and finding["severity"] is None and finding["extracted_results"] == []


@pytest.mark.parametrize("template", ["a.yml", "dns/caa.yml", "x.YML"])
def test_yml_templates_are_refused_since_nuclei_reads_only_yaml_and_json_as_templates(template: str) -> None:
    with pytest.raises(ValidationError, match=r"nuclei does not read \.yml files as templates; name it \.yaml"):
        NucleiParams(targets=("example.com",), templates=(template,))


def test_tags_references_and_ids_given_as_one_string_become_lists() -> None:
    line = b'{"template-id": "t", "info": {"tags": "a", "reference": "https://x", "classification": '
    line += b'{"cve-id": "cve-1", "cwe-id": null, "cvss-score": 9.8, "cvss-metrics": "CVSS:3.1/AV:N"}}}\n'
    (finding,) = parse_bytes(nuclei.SPEC, {"nuclei.jsonl": line})
    assert (finding["tags"], finding["reference"], finding["cve_id"], finding["cwe_id"]) == (
        ["a"], ["https://x"], ["cve-1"], [],
    )  # fmt: skip
    assert finding["cvss_score"] == 9.8 and finding["cvss_metrics"] == "CVSS:3.1/AV:N"
