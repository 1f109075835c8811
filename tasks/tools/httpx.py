"""httpx: probe hosts and URLs over HTTP(S); each responding URL is a finding with status, title and tech."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from tasks.tools.base import Finding, Invocation, ToolParams, ToolSpec, input_path, output_path, parse_jsonl
from tasks.tools.validation import StatusCode, WebTarget, lines, port_number, str_items

TARGETS_FILE = "targets.txt"
REPORT_FILE = "httpx.jsonl"
MAX_TARGETS = 100_000


class HttpxParams(ToolParams):
    """What to probe, which status codes to keep, and which extra probes to run."""

    targets: tuple[WebTarget, ...] = Field(min_length=1, max_length=MAX_TARGETS)
    match_codes: tuple[StatusCode, ...] | None = Field(default=None, min_length=1, max_length=50)
    title: bool = True
    web_server: bool = True
    tech_detect: bool = False
    follow_redirects: bool = False


def build(params: HttpxParams) -> Invocation:
    """Targets go in through -l; -sc and -cl are always on since the findings report them."""
    argv = ["-l", input_path(TARGETS_FILE), "-json", "-o", output_path(REPORT_FILE), "-silent", "-duc"]
    argv += ["-sc", "-cl"]
    if params.match_codes:
        argv += ["-mc", ",".join(str(code) for code in params.match_codes)]
    flags = {"-title": params.title, "-server": params.web_server, "-td": params.tech_detect}
    argv += [flag for flag, wanted in flags.items() if wanted]
    if params.follow_redirects:
        argv.append("-fr")
    return Invocation(argv=argv, input_files={TARGETS_FILE: lines(params.targets)}, output_files=[REPORT_FILE])


def parse(outputs: Mapping[str, bytes]) -> list[Finding]:
    """One finding per JSON line that has a URL; probe failures (failed: true) are skipped."""
    records = parse_jsonl(outputs.get(REPORT_FILE, b""))
    return [_finding(r) for r in records if r.get("url") and not r.get("failed")]


def _finding(record: dict[str, Any]) -> Finding:
    return {
        "url": record.get("url"),
        "input": record.get("input"),
        "status_code": record.get("status_code"),
        "title": record.get("title"),
        "webserver": record.get("webserver"),
        "tech": str_items(record.get("tech")),
        "content_length": record.get("content_length"),
        "content_type": record.get("content_type"),
        "location": record.get("location"),
        "host": record.get("host"),
        "ip": record.get("host_ip"),
        "port": port_number(record.get("port")),
        "scheme": record.get("scheme"),
    }


SPEC = ToolSpec(
    name="httpx",
    image="projectdiscovery/httpx:v1.8.1",
    entrypoint=["httpx"],
    params_model=HttpxParams,
    build=build,
    parse=parse,
    default_timeout=900,
    description="HTTP(S) probing of hosts and URLs: status code, title, web server and technologies.",
    finding_fields={
        "url": "the URL that answered",
        "input": "the target line it came from",
        "status_code": "the HTTP status code",
        "title": "the page title, or null",
        "webserver": "the Server header, or null",
        "tech": "technologies detected (-td), e.g. ['Nginx:1.25', 'PHP']; empty without -td",
        "content_length": "the response body length in bytes",
        "content_type": "the Content-Type without parameters, or null",
        "location": "the Location header of a redirect, or null",
        "host": "the host name of the URL",
        "ip": "the IP address that answered, or null",
        "port": "the port as a number",
        "scheme": "http or https",
    },
)
