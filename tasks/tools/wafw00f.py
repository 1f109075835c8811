"""wafw00f: which web application firewall (or other security filter) stands in front of each site.

Debian's wafw00f 2.2.0 reads its URLs from a text file (-i, one a line) and, with -o FILE.csv, writes once at the
end a CSV of `url,detected,firewall,manufacturer` (main.py, buildResultRecord): one line per WAF its signatures
matched, else one line for its generic detection (firewall `Generic`, manufacturer `Unknown`) or for nothing found
(`False,None,None`); a site it could not reach gets no line (only a log line on stderr), and with no line at all
the file stays empty. The firewall and manufacturer are names from its own plugins, the URL is this run's own.
It sends about seven requests a site (a plain one, then XSS, SQL injection and path traversal probes), one after
another, and has no option to slow down or pause: it cannot be given a rate (rate_param None), so a host's budget
is not split with it; chunks of 100 sites keep a run short. Redirects are not followed (-r): a URL's host is the
whole scope.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Annotated

from pydantic import AfterValidator, Field

from tasks.tools.base import (
    MAX_LINE_BYTES,
    Finding,
    Invocation,
    Outputs,
    ParseError,
    Target,
    TargetKind,
    ToolParams,
    ToolSpec,
    input_path,
    output_path,
)
from tasks.tools.chunking import Chunking
from tasks.tools.validation import WebUrl, lines

TARGETS_FILE = "targets.txt"
REPORT_FILE = "wafw00f.csv"
MAX_TARGETS = 1024
HEADER = ["url", "detected", "firewall", "manufacturer"]
_BOOLEANS = {"True": True, "False": False}


def _site(value: str) -> str:
    if "@" in value.split("/")[2]:  # a WebUrl has a host after "//"
        raise ValueError(f"url {value!r} must have no user info")
    return value


class Wafw00fParams(ToolParams):
    """Which sites to fingerprint, and whether to look for every WAF that matches rather than the first."""

    targets: tuple[Annotated[WebUrl, AfterValidator(_site)], ...] = Field(
        min_length=1, max_length=MAX_TARGETS, description="http(s) URLs of the sites"
    )
    find_all: bool = Field(
        default=False, description="report every WAF whose signature matches, and the generic detection too (-a)"
    )


def build(params: Wafw00fParams) -> Invocation:
    """URLs through -i, the CSV to /outputs, no redirects followed; the banner and log go to stdout and stderr."""
    argv = ["-i", input_path(TARGETS_FILE), "-o", output_path(REPORT_FILE), "-r"]
    if params.find_all:
        argv.append("-a")
    return Invocation(argv=argv, input_files={TARGETS_FILE: lines(params.targets)}, output_files=[REPORT_FILE])


def parse(outputs: Outputs) -> Iterator[Finding]:
    """One finding per CSV line after the header, read a line at a time.

    wafw00f writes the file at its very end, so a killed run leaves it empty or absent (a last line cut off
    mid-write is dropped); a header of another shape or a line of other fields raises ParseError.
    """
    stream = outputs.get(REPORT_FILE)
    if stream is None:
        return
    number = 0
    while line := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES:
            raise ParseError(f"line {number} of the wafw00f results is longer than {MAX_LINE_BYTES} bytes")
        if not line.strip() or not line.endswith(b"\n"):
            continue  # blank, or the last line of a killed run
        fields = next(csv.reader([line.decode("utf-8", errors="replace").rstrip("\r\n")]))
        if number == 1:
            if fields != HEADER:
                raise ParseError(f"the wafw00f results do not start with its header: {line[:80]!r}")
            continue
        yield _finding(fields, number)


def _finding(fields: list[str], number: int) -> Finding:
    if len(fields) != len(HEADER) or fields[1] not in _BOOLEANS:
        raise ParseError(f"line {number} of the wafw00f results is not url,detected,firewall,manufacturer")
    url, detected, firewall, manufacturer = fields
    found = _BOOLEANS[detected]
    return {
        "url": url,
        "detected": found,
        "firewall": firewall if found else None,  # wafw00f writes the string None when nothing was found
        "manufacturer": manufacturer if found else None,
        "generic": found and firewall == "Generic",
    }


def targets(params: Wafw00fParams) -> Iterator[Target]:
    """Each URL: wafw00f requests it with probes in its query and follows no redirect."""
    for url in params.targets:
        yield TargetKind.URL, url


SPEC = ToolSpec(
    name="wafw00f",
    # Debian's wafw00f in the local tools image (scripts/build-images tools); TOOLRUNNER_IMAGE_WAFW00F overrides.
    image="toolrunner-tools:local",
    entrypoint=["wafw00f"],
    params_model=Wafw00fParams,
    build=build,
    parse=parse,
    version=1,
    default_timeout=600,
    description="Web application firewall detection (wafw00f): which WAF, if any, answers for each site.",
    targets=targets,
    finding_hosts=("url",),
    chunking=Chunking("targets", 100),
    finding_fields={
        "url": "the site's URL as given",
        "detected": "whether a WAF (or, generic, some security filter) was detected",
        "firewall": "the WAF's name as wafw00f's signature names it (Generic for its generic detection); null if none",
        "manufacturer": "the WAF's maker (Unknown for the generic detection); null if none",
        "generic": "whether only the generic detection (attacks answered differently) saw it, no named signature",
    },
)
