"""nuclei: run the templates a task ships in /inputs/templates against targets; each match is a finding."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from tasks.tools.base import (
    Finding,
    Invocation,
    Outputs,
    Target,
    TargetKind,
    ToolParams,
    ToolSpec,
    input_path,
    jsonl_records,
    output_path,
)
from tasks.tools.chunking import Chunking, Unit
from tasks.tools.validation import WebTarget, lines, one_or_many, port_number, str_items

TARGETS_FILE = "targets.txt"
TEMPLATES_DIR = "templates"
REPORT_FILE = "nuclei.jsonl"
MAX_TARGETS = 10_000
# Relative paths under templates/ (no '..', no leading '.' or '-', no ',' which -t would split on).
_TEMPLATE = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}/){0,4}[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.yaml")

Severity = Literal["info", "low", "medium", "high", "critical", "unknown"]


def _template(value: str) -> str:
    # nuclei v3.10.0 (pkg/catalog/config/template.go IsTemplate) takes only .yaml and .json files as
    # templates: `-t x.yml` is read as a list of template paths, and .yml files in a directory are skipped.
    if value.lower().endswith(".yml"):
        raise ValueError(f"template {value!r}: nuclei does not read .yml files as templates; name it .yaml")
    if not _TEMPLATE.fullmatch(value) or ".." in value:
        raise ValueError(f"template {value!r} must be a relative .yaml path inside {TEMPLATES_DIR}/")
    return value


class NucleiParams(ToolParams):
    """Targets, which shipped templates to run (default: all of templates/), and a severity filter."""

    targets: tuple[WebTarget, ...] = Field(min_length=1, max_length=MAX_TARGETS)
    templates: tuple[Annotated[str, AfterValidator(_template)], ...] = Field(default=(), max_length=1000)
    severities: tuple[Severity, ...] = Field(default=(), max_length=6)
    interactsh: bool = False
    rate_limit: int | None = Field(
        default=None, ge=1, le=100_000, description="at most this many requests a second for the whole run (-rl)"
    )


def build(params: NucleiParams) -> Invocation:
    """Templates come from the task's files under /inputs/templates/; no update check or download."""
    argv = ["-l", input_path(TARGETS_FILE), "-jsonl", "-o", output_path(REPORT_FILE), "-silent"]
    argv += ["-disable-update-check", "-omit-raw", "-omit-template"]
    argv.append("-dr")  # no redirects: a template's redirect could lead out of the tenant's scope
    names = params.templates or ("",)  # "" selects the whole directory
    for name in dict.fromkeys(names):
        argv += ["-t", input_path(f"{TEMPLATES_DIR}/{name}")]
    if params.severities:
        argv += ["-s", ",".join(dict.fromkeys(params.severities))]
    if not params.interactsh:
        argv.append("-no-interactsh")  # out-of-band checks would send tenant targets to a public server
    if params.rate_limit is not None:
        argv += ["-rl", str(params.rate_limit)]
    return Invocation(argv=argv, input_files={TARGETS_FILE: lines(params.targets)}, output_files=[REPORT_FILE])


def parse(outputs: Outputs) -> Iterator[Finding]:
    """One finding per JSON line that names a template; a line without template-id is no finding."""
    for record in jsonl_records(outputs.get(REPORT_FILE)):
        if record.get("template-id"):
            yield _finding(record)


def _finding(record: dict[str, Any]) -> Finding:
    info = _object(record.get("info"))
    classification = _object(info.get("classification"))
    score = classification.get("cvss-score")
    return {
        "template_id": record.get("template-id"),
        "name": info.get("name"),
        "severity": info.get("severity"),
        "matched_at": record.get("matched-at"),
        "host": record.get("host"),
        "port": port_number(record.get("port")),
        "url": record.get("url") or None,
        "ip": record.get("ip"),
        "type": record.get("type"),
        "matcher_name": record.get("matcher-name"),
        "extractor_name": record.get("extractor-name"),
        "extracted_results": str_items(record.get("extracted-results")),
        "tags": one_or_many(info.get("tags")),
        "description": info.get("description") or None,
        "remediation": info.get("remediation") or None,
        "reference": one_or_many(info.get("reference")),
        "cve_id": one_or_many(classification.get("cve-id")),
        "cwe_id": one_or_many(classification.get("cwe-id")),
        "cvss_score": score if isinstance(score, int | float) and not isinstance(score, bool) else None,
        "cvss_metrics": classification.get("cvss-metrics") or None,
        "curl_command": record.get("curl-command") or None,
    }


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def targets(params: NucleiParams) -> Iterator[Target]:
    """Each target line of -l: host, host:port or a URL."""
    return ((TargetKind.WEB, target) for target in params.targets)


SPEC = ToolSpec(
    name="nuclei",
    image="projectdiscovery/nuclei:v3.10.0",
    entrypoint=["nuclei"],
    params_model=NucleiParams,
    build=build,
    parse=parse,
    version=5,
    default_timeout=3600,
    description="Template-based vulnerability checks with nuclei, using only the templates the task ships.",
    targets=targets,
    finding_hosts=("matched_at",),
    rate_param="rate_limit",
    chunking=Chunking("targets", 100, Unit.ITEMS),
    finding_fields={
        "template_id": "the id of the template that matched",
        "name": "the template's name (info.name)",
        "severity": "info, low, medium, high, critical or unknown (info.severity)",
        "matched_at": "where it matched: a URL, or host:port for tcp templates",
        "host": "the host name or address of the target, never with a port",
        "port": "the port of the target as a number, or null",
        "url": "the URL of the target (http templates), or null",
        "ip": "the IP address that answered, or null",
        "type": "the protocol of the template: http, dns, tcp, ssl, ...",
        "matcher_name": "the name of the matcher that fired, or null",
        "extractor_name": "the name of the extractor that fired (the only label of a template without matchers)",
        "extracted_results": "values pulled out by the template's extractors",
        "tags": "the template's tags (info.tags)",
        "description": "what the template checks (info.description), or null",
        "remediation": "how to fix what it found (info.remediation), or null",
        "reference": "links about the issue (info.reference)",
        "cve_id": "the CVE ids of the issue (info.classification.cve-id), e.g. ['cve-2021-41773']",
        "cwe_id": "the CWE ids of the issue (info.classification.cwe-id), e.g. ['cwe-22']",
        "cvss_score": "the CVSS base score (info.classification.cvss-score), or null",
        "cvss_metrics": "the CVSS vector (info.classification.cvss-metrics), or null",
        "curl_command": "a curl command that repeats the matching request, or null",
    },
)
