"""Every tool's parser against its fixtures: each file in tests/fixtures/<tool>/ beside its .expected.json."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from tasks.errors import ParseError
from tasks.tools import load_catalogue
from tasks.tools.base import Finding, ToolSpec

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EXPECTED = ".expected.json"
CATALOGUE = load_catalogue()


def fixture_files() -> list[Path]:
    return sorted(
        path for path in FIXTURES.glob("*/*") if path.name != "SOURCES.md" and not path.name.endswith(EXPECTED)
    )


def report_name(spec: ToolSpec) -> str:
    """The output file the tool's parser reads (each security tool writes one)."""
    return str(importlib.import_module(spec.parse.__module__).REPORT_FILE)


def parse_fixture(path: Path) -> tuple[list[Finding], str | None]:
    """The findings of one fixture, and the ParseError message that ended them, if one did."""
    spec = CATALOGUE[path.parent.name]
    findings: list[Finding] = []
    with path.open("rb") as stream:
        try:
            findings.extend(spec.parse({report_name(spec): stream}))
        except ParseError as exc:
            return findings, str(exc)
    return findings, None


def expected(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_name(path.name.split(".")[0] + EXPECTED).read_text())
    return data


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_fixture_parses_to_exactly_its_expected_findings(path: Path) -> None:
    findings, error = parse_fixture(path)
    want = expected(path)
    assert findings == want["findings"]
    assert error == want["parse_error"]


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_finding_field_of_a_fixture_is_documented_and_every_documented_field_present(path: Path) -> None:
    spec = CATALOGUE[path.parent.name]
    for finding in parse_fixture(path)[0]:
        assert list(finding) == list(spec.finding_fields)


def test_every_tool_has_fixtures_and_every_expectation_has_its_fixture() -> None:
    tools = {path.parent.name for path in fixture_files()}
    assert tools == {
        "dnsx",
        "ffuf",
        "httpx",
        "naabu",
        "nmap",
        "gobuster",
        "nuclei",
        "sslscan",
        "subfinder",
        "whatweb",
        "sqlmap",
        "wafw00f",
    }
    for path in FIXTURES.glob(f"*/*{EXPECTED}"):
        assert any(p.parent == path.parent and p.name.split(".")[0] == path.name.split(".")[0] for p in fixture_files())
