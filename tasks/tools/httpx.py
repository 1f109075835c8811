"""httpx: probe hosts and URLs over HTTP(S); each responding URL is a finding with status, title and tech."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from tasks.tools.base import Finding, Invocation, ToolParams, ToolSpec, input_path, output_path, parse_jsonl

TARGETS_FILE = "targets.txt"
REPORT_FILE = "httpx.jsonl"
MAX_TARGETS = 100_000
_LABEL = r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\.?")
_PRINTABLE = re.compile(r"[\x21-\x7e]{1,2048}")  # no spaces or control characters: one line, one target


def _target(value: str) -> str:
    """Accept a host or IP with an optional :port, or an absolute http(s) URL without credentials."""
    if not _PRINTABLE.fullmatch(value):
        raise ValueError("a target must be printable ASCII without spaces, at most 2048 characters")
    if _is_ip(value):
        return value
    is_url = "://" in value
    parts = urlsplit(value if is_url else f"http://{value}")
    if parts.scheme not in ("http", "https") or "@" in parts.netloc:
        raise ValueError(f"target {value!r} must be host[:port] or an http(s) URL without credentials")
    if not is_url and (parts.path or parts.query or parts.fragment):
        raise ValueError(f"target {value!r} with a path must be written as a full http(s) URL")
    host, port = parts.hostname or "", parts.port  # .port raises ValueError when out of range
    if not (_is_ip(host) or _HOSTNAME.fullmatch(host)) or port == 0:
        raise ValueError(f"target {value!r} has no valid host or port")
    return value


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class HttpxParams(ToolParams):
    """What to probe, which status codes to keep, and which extra probes to run."""

    targets: tuple[Annotated[str, AfterValidator(_target)], ...] = Field(min_length=1, max_length=MAX_TARGETS)
    match_codes: tuple[Annotated[int, Field(ge=100, le=599)], ...] | None = Field(
        default=None, min_length=1, max_length=50
    )
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
    return Invocation(
        argv=argv,
        input_files={TARGETS_FILE: "\n".join(params.targets) + "\n"},
        output_files=[REPORT_FILE],
    )


def parse(outputs: Mapping[str, bytes]) -> list[Finding]:
    """One finding per JSON line that has a URL; probe failures (failed: true) are skipped."""
    records = parse_jsonl(outputs.get(REPORT_FILE, b""))
    return [_finding(r) for r in records if r.get("url") and not r.get("failed")]


def _finding(record: dict[str, Any]) -> Finding:
    tech = record.get("tech")
    port = record.get("port")
    return {
        "url": record.get("url"),
        "input": record.get("input"),
        "status_code": record.get("status_code"),
        "title": record.get("title"),
        "webserver": record.get("webserver"),
        "tech": [str(t) for t in tech] if isinstance(tech, list) else [],
        "content_length": record.get("content_length"),
        "content_type": record.get("content_type"),
        "location": record.get("location"),
        "host": record.get("host"),
        "ip": record.get("host_ip"),
        "port": int(port) if isinstance(port, str) and port.isdigit() else port,
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
