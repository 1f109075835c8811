"""subfinder: passive subdomain discovery for a list of domains; each subdomain found is a finding."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import AfterValidator, Field, model_validator

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
from tasks.tools.validation import DomainName, lines, not_both, str_items

DOMAINS_FILE = "domains.txt"
REPORT_FILE = "subfinder.jsonl"
MAX_DOMAINS = 1000
_SOURCE = re.compile(r"[a-z0-9]{1,32}")


def _source(value: str) -> str:
    if not _SOURCE.fullmatch(value):
        raise ValueError(f"source {value!r} must be a subfinder source name such as crtsh (subfinder -ls)")
    return value


class SubfinderParams(ToolParams):
    """Which domains to enumerate, and optionally which passive sources to ask (or all of them)."""

    domains: tuple[DomainName, ...] = Field(min_length=1, max_length=MAX_DOMAINS)
    sources: tuple[Annotated[str, AfterValidator(_source)], ...] = Field(default=(), max_length=100)
    all_sources: bool = False
    max_time_minutes: int | None = Field(default=None, ge=1, le=60)

    @model_validator(mode="after")
    def _sources_or_all(self) -> SubfinderParams:
        not_both(sources=bool(self.sources), all_sources=self.all_sources)
        return self


def build(params: SubfinderParams) -> Invocation:
    """Domains go in through -dL; -oJ (alias of -json) writes JSON lines; -duc skips the update check."""
    argv = ["-dL", input_path(DOMAINS_FILE), "-oJ", "-o", output_path(REPORT_FILE), "-silent", "-duc"]
    if params.sources:
        argv += ["-s", ",".join(params.sources)]
    if params.all_sources:
        argv.append("-all")
    if params.max_time_minutes is not None:
        argv += ["-max-time", str(params.max_time_minutes)]
    return Invocation(argv=argv, input_files={DOMAINS_FILE: lines(params.domains)}, output_files=[REPORT_FILE])


def parse(outputs: Outputs) -> Iterator[Finding]:
    """One finding per JSON line with a host (a line without one is no finding); -cs sources are joined."""
    for record in jsonl_records(outputs.get(REPORT_FILE)):
        if record.get("host"):
            yield _finding(record)


def _finding(record: dict[str, Any]) -> Finding:
    source = record.get("source")
    sources = record.get("sources")
    if source is None and isinstance(sources, list):
        source = ",".join(str_items(sources))
    return {
        "host": record.get("host"),
        "input": record.get("input"),
        "source": source,
        "wildcard_certificate": record.get("wildcard_certificate") is True,
    }


def targets(params: SubfinderParams) -> Iterator[Target]:
    """The domains enumerated (through passive sources: the domains' hosts are never contacted)."""
    return ((TargetKind.DOMAIN, domain) for domain in params.domains)


SPEC = ToolSpec(
    name="subfinder",
    image="projectdiscovery/subfinder:v2.11.0",
    entrypoint=["subfinder"],
    params_model=SubfinderParams,
    build=build,
    parse=parse,
    version=5,
    default_timeout=1200,
    description="Passive subdomain enumeration from public sources (certificate logs, archives, DNS data).",
    targets=targets,
    finding_hosts=("host",),
    # No rate: subfinder asks passive sources (certificate logs, archives, DNS datasets) and never contacts the
    # domains it enumerates, so there is no scanned host to be polite to (its -rl paces the sources' APIs).
    rate_param=None,
    chunking=Chunking("domains", 50, Unit.ITEMS),
    finding_fields={
        "host": "the subdomain found",
        "input": "the domain it was found for",
        "source": "the passive source that reported it (comma-joined when several)",
        "wildcard_certificate": (
            "true when the name came from a wildcard certificate (subfinder strips the '*.' from host)"
        ),
    },
)
