"""whatweb: fingerprint the technologies of web sites; each plugin that matched a site is a finding.

Debian's WhatWeb 0.5.5 writes --log-json as a JSON array laid out one site a line (lib/whatweb/logging/json.rb
puts "[", then each site as JSON.generate on its own line with "," lines between, then "]" at exit), so the
report is read as JSON lines with those three separator lines blanked: a killed run, which never writes the
closing "]", keeps every complete site.
whatweb reads each line of -i as a file name first (File.exist?), then as an IP range or CIDR to expand, then as
a URL: only absolute http(s) URLs are accepted, which it takes as they are. Its --wait is whole seconds slept
after every request a thread makes (lib/target.rb, Target#open), so a rate becomes threads that each wait 1 s
(or one thread waiting 1/rate s, rounded up, below one request a second).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from pydantic import Field

from tasks.tools.base import (
    Finding,
    Invocation,
    Outputs,
    ParseError,
    Target,
    TargetKind,
    ToolParams,
    ToolSpec,
    input_path,
    jsonl_records,
    output_path,
)
from tasks.tools.chunking import Chunking
from tasks.tools.validation import WebUrl, lines, str_items

TARGETS_FILE = "targets.txt"
REPORT_FILE = "whatweb.json"
MAX_TARGETS = 10_000
MAX_THREADS = 100
# The plugin fields json.rb writes, each a list of strings; certainty is a number (absent when 100).
LIST_FIELDS = ("version", "os", "string", "account", "model", "firmware", "module", "filepath")
_SEPARATORS = frozenset({b"[", b",", b"]"})


class WhatwebParams(ToolParams):
    """Which sites to fingerprint, how hard, and whether to follow redirects on the same host."""

    targets: tuple[WebUrl, ...] = Field(
        min_length=1, max_length=MAX_TARGETS, description="absolute http(s) URLs (whatweb reads bare names as files)"
    )
    aggression: Literal[1, 3] = Field(
        default=1, description="1: one request a site; 3: more requests to the site when a plugin matches (-a)"
    )
    follow_redirects: bool = Field(
        default=False, description="follow redirects to the same host only (--follow-redirect=same-site)"
    )
    rate: float | None = Field(
        default=None,
        ge=0.001,
        le=MAX_THREADS,
        description="at most this many requests a second (decimals allowed): threads that each wait after a request",
    )


@dataclass(frozen=True)
class Pace:
    """Threads, each sleeping wait_seconds after every request, that keep whatweb within a rate."""

    threads: int
    wait_seconds: int

    def argv(self) -> list[str]:
        """--max-threads and --wait (whatweb reads --wait with to_i: whole seconds)."""
        return ["--max-threads", str(self.threads), f"--wait={self.wait_seconds}"]


def pace(rate: float) -> Pace:
    """floor(rate) threads waiting 1 s; below one request a second, one thread waiting ceil(1/rate) s."""
    if rate < 1:
        return Pace(threads=1, wait_seconds=math.ceil(1 / rate))
    return Pace(threads=min(math.floor(rate), MAX_THREADS), wait_seconds=1)


def build(params: WhatwebParams) -> Invocation:
    """Targets through -i, the JSON log to /outputs; -q keeps stdout quiet, redirects stay on the host or off."""
    argv = ["-i", input_path(TARGETS_FILE), "--log-json", output_path(REPORT_FILE), "-q", "--color=never"]
    argv += ["-a", str(params.aggression), f"--follow-redirect={'same-site' if params.follow_redirects else 'never'}"]
    if params.rate is not None:
        argv += pace(params.rate).argv()
    return Invocation(argv=argv, input_files={TARGETS_FILE: lines(params.targets)}, output_files=[REPORT_FILE])


def parse(outputs: Outputs) -> Iterator[Finding]:
    """One finding per plugin that matched a site (a site without any: one finding with plugin null).

    A site record without a target is no finding; a target or status of the wrong type raises ParseError.
    """
    stream = outputs.get(REPORT_FILE)
    if stream is None:
        return
    for record in jsonl_records(_BlankSeparators(stream)):
        if record.get("target") is not None:
            yield from _findings(record)


class _BlankSeparators:
    """A reader whose lines "[", "," and "]" (json.rb's array punctuation) read as blank lines."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def readline(self, size: int = -1) -> bytes:
        line = self.stream.readline(size)
        return b"\n" if line.strip() in _SEPARATORS else line


def _findings(record: dict[str, Any]) -> Iterator[Finding]:
    url, status = record.get("target"), record.get("http_status")
    if not isinstance(url, str) or not (status is None or _is_int(status)):
        raise ParseError(f"a whatweb site has a target or status of the wrong type: {url!r:.80}, {status!r:.20}")
    plugins = record.get("plugins")
    matched = (
        [(name, found) for name, found in plugins.items() if isinstance(found, dict)]
        if isinstance(plugins, dict)
        else []
    )
    if not matched:
        yield {"url": url, "status": status, "plugin": None, "certainty": None, **{key: [] for key in LIST_FIELDS}}
    for name, found in matched:
        certainty = found.get("certainty", 100)
        yield {
            "url": url,
            "status": status,
            "plugin": name,
            "certainty": certainty if _is_int(certainty) else None,
            **{field: str_items(found.get(field)) for field in LIST_FIELDS},
        }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def targets(params: WhatwebParams) -> Iterator[Target]:
    """Each URL of -i, as whatweb takes an absolute URL: as it is."""
    return ((TargetKind.URL, target) for target in params.targets)


SPEC = ToolSpec(
    name="whatweb",
    # Debian's whatweb in the local tools image (scripts/build-images tools); TOOLRUNNER_IMAGE_WHATWEB overrides.
    image="toolrunner-tools:local",
    entrypoint=["whatweb"],
    params_model=WhatwebParams,
    build=build,
    parse=parse,
    version=2,
    default_timeout=600,
    description="Web technology fingerprints: which server, language, CMS and frameworks each site shows (WhatWeb).",
    targets=targets,
    finding_hosts=("url",),
    rate_param="rate",
    chunking=Chunking("targets", 100),
    rate_integer=False,
    finding_fields={
        "url": "the site as whatweb fetched it (a redirect followed is a site of its own)",
        "status": "the HTTP status of the response, or null",
        "plugin": "the whatweb plugin that matched (e.g. HTTPServer, PHP, WordPress, Title), or null for a site"
        " none matched",
        "certainty": "how sure the plugin is, 0-100 (100 unless whatweb says less), or null",
        "version": "versions the plugin found, e.g. ['7.4.3'] for PHP",
        "os": "operating systems the plugin found, e.g. ['Ubuntu Linux']",
        "string": "what the plugin matched, e.g. the Server header or the title",
        "account": "account names the plugin found",
        "model": "device models the plugin found",
        "firmware": "firmware versions the plugin found",
        "module": "modules or components the plugin found (e.g. the country code for Country)",
        "filepath": "file paths the plugin found in the response",
    },
)
