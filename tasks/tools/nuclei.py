"""nuclei: run the templates a task ships in /inputs/templates against targets; each match is a finding."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from tasks.tools.base import Finding, Invocation, ToolParams, ToolSpec, input_path, output_path, parse_jsonl
from tasks.tools.validation import WebTarget, lines, str_items

TARGETS_FILE = "targets.txt"
TEMPLATES_DIR = "templates"
REPORT_FILE = "nuclei.jsonl"
MAX_TARGETS = 10_000
# Relative paths under templates/ (no '..', no leading '.' or '-', no ',' which -t would split on).
_TEMPLATE = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}/){0,4}[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.ya?ml")

Severity = Literal["info", "low", "medium", "high", "critical", "unknown"]


def _template(value: str) -> str:
    if not _TEMPLATE.fullmatch(value) or ".." in value:
        raise ValueError(f"template {value!r} must be a relative .yaml path inside {TEMPLATES_DIR}/")
    return value


class NucleiParams(ToolParams):
    """Targets, which shipped templates to run (default: all of templates/), and a severity filter."""

    targets: tuple[WebTarget, ...] = Field(min_length=1, max_length=MAX_TARGETS)
    templates: tuple[Annotated[str, AfterValidator(_template)], ...] = Field(default=(), max_length=1000)
    severities: tuple[Severity, ...] = Field(default=(), max_length=6)
    interactsh: bool = False


def build(params: NucleiParams) -> Invocation:
    """Templates come from the task's files under /inputs/templates/; no update check or download."""
    argv = ["-l", input_path(TARGETS_FILE), "-jsonl", "-o", output_path(REPORT_FILE), "-silent"]
    argv += ["-disable-update-check", "-omit-raw", "-omit-template"]
    names = params.templates or ("",)  # "" selects the whole directory
    for name in dict.fromkeys(names):
        argv += ["-t", input_path(f"{TEMPLATES_DIR}/{name}")]
    if params.severities:
        argv += ["-s", ",".join(dict.fromkeys(params.severities))]
    if not params.interactsh:
        argv.append("-no-interactsh")  # out-of-band checks would send tenant targets to a public server
    return Invocation(argv=argv, input_files={TARGETS_FILE: lines(params.targets)}, output_files=[REPORT_FILE])


def parse(outputs: Mapping[str, bytes]) -> list[Finding]:
    """One finding per JSON line that names a template."""
    return [_finding(r) for r in parse_jsonl(outputs.get(REPORT_FILE, b"")) if r.get("template-id")]


def _finding(record: dict[str, Any]) -> Finding:
    info = record.get("info")
    info = info if isinstance(info, dict) else {}
    return {
        "template_id": record.get("template-id"),
        "name": info.get("name"),
        "severity": info.get("severity"),
        "matched_at": record.get("matched-at"),
        "host": record.get("host"),
        "ip": record.get("ip"),
        "type": record.get("type"),
        "matcher_name": record.get("matcher-name"),
        "extracted_results": str_items(record.get("extracted-results")),
    }


SPEC = ToolSpec(
    name="nuclei",
    image="projectdiscovery/nuclei:v3.10.0",
    entrypoint=["nuclei"],
    params_model=NucleiParams,
    build=build,
    parse=parse,
    default_timeout=3600,
    description="Template-based vulnerability checks with nuclei, using only the templates the task ships.",
    finding_fields={
        "template_id": "the id of the template that matched",
        "name": "the template's name (info.name)",
        "severity": "info, low, medium, high, critical or unknown (info.severity)",
        "matched_at": "where it matched: a URL, or host:port for network templates",
        "host": "the target the match was made against",
        "ip": "the IP address that answered, or null",
        "type": "the protocol of the template: http, dns, network, ssl, ...",
        "matcher_name": "the name of the matcher that fired, or null",
        "extracted_results": "values pulled out by the template's extractors",
    },
)
