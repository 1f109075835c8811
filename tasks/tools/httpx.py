"""httpx: probe hosts and URLs over HTTP(S); each responding URL is a finding with status, title and tech."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import Field, model_validator

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
from tasks.tools.validation import StatusCode, WebTarget, lines, port_number, str_items

TARGETS_FILE = "targets.txt"
REPORT_FILE = "httpx.jsonl"
MAX_TARGETS = 100_000
# Params of version 1 that never did anything: -json turns tech detection on and always carries title and server.
REMOVED_PARAMS = ("title", "web_server", "tech_detect")


class HttpxParams(ToolParams):
    """What to probe, which status codes to keep, and whether to follow redirects."""

    targets: tuple[WebTarget, ...] = Field(min_length=1, max_length=MAX_TARGETS)
    match_codes: tuple[StatusCode, ...] | None = Field(default=None, min_length=1, max_length=50)
    follow_redirects: bool = Field(
        default=False, description="follow redirects on the same host only (-fhr); findings then carry final_url"
    )
    rate_limit: int | None = Field(
        default=None, ge=1, le=100_000, description="at most this many HTTP requests a second for the whole run (-rl)"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_removed_params(cls, data: Any) -> Any:
        removed = [key for key in REMOVED_PARAMS if isinstance(data, dict) and key in data]
        if removed:
            raise ValueError(
                f"{', '.join(removed)}: removed; every finding carries title, webserver and tech (httpx -json"
                " always collects them), so leave the key out and read or ignore those fields"
            )
        return data


def build(params: HttpxParams) -> Invocation:
    """Targets go in through -l; -sc and -cl are always on since the findings report them."""
    # No -title, -server or -td: they change only the console text, -json always collects all three.
    argv = ["-l", input_path(TARGETS_FILE), "-json", "-o", output_path(REPORT_FILE), "-silent", "-duc"]
    argv += ["-sc", "-cl"]
    if params.match_codes:
        argv += ["-mc", ",".join(str(code) for code in params.match_codes)]
    if params.follow_redirects:
        argv.append("-fhr")  # the same host only: -fr would follow a redirect out of the tenant's scope
    if params.rate_limit is not None:
        argv += ["-rl", str(params.rate_limit)]
    return Invocation(argv=argv, input_files={TARGETS_FILE: lines(params.targets)}, output_files=[REPORT_FILE])


def parse(outputs: Outputs) -> Iterator[Finding]:
    """One finding per JSON line that has a URL; probe failures (failed: true) and lines without a URL are none."""
    for record in jsonl_records(outputs.get(REPORT_FILE)):
        if record.get("url") and not record.get("failed"):
            yield _finding(record)


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
        "final_url": record.get("final_url") or None,
        "chain_status_codes": [code for code in _list(record.get("chain_status_codes")) if isinstance(code, int)],
    }


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def targets(params: HttpxParams) -> Iterator[Target]:
    """Each target line of -l: host, host:port or a URL."""
    return ((TargetKind.WEB, target) for target in params.targets)


SPEC = ToolSpec(
    name="httpx",
    image="projectdiscovery/httpx:v1.8.1",
    entrypoint=["httpx"],
    params_model=HttpxParams,
    build=build,
    parse=parse,
    version=5,
    default_timeout=900,
    description="HTTP(S) probing of hosts and URLs: status code, title, web server and technologies.",
    targets=targets,
    finding_hosts=("url",),
    rate_param="rate_limit",
    chunking=Chunking("targets", 1000, Unit.ITEMS),
    finding_fields={
        "url": "the URL that answered",
        "input": "the target line it came from",
        "status_code": "the HTTP status code",
        "title": "the page title, or null (always collected: httpx -json implies -title)",
        "webserver": "the Server header, or null (always collected)",
        "tech": "technologies detected (httpx -json implies -td), e.g. ['Nginx:1.25', 'PHP']",
        "content_length": "the response body length in bytes",
        "content_type": "the Content-Type without parameters, or null",
        "location": "the Location header of a redirect, or null",
        "host": "the host name of the URL",
        "ip": "the IP address that answered, or null",
        "port": "the port as a number",
        "scheme": "http or https",
        "final_url": "with follow_redirects, the URL at the end of the redirect chain; else null",
        "chain_status_codes": "with follow_redirects, the status code of each response in the chain; else []",
    },
)
