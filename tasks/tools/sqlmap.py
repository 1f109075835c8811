"""sqlmap: which parameters of given URLs are injectable, by which techniques; detection only, never exploitation.

Debian's sqlmap 1.7.2 reads its URLs from a file in multiple targets mode (-m) and, there only, writes one CSV line
per injection point it confirmed (`_saveToResultsFile`, lib/controller/controller.py) to --results-file: the
header `Target URL,Place,Parameter,Technique(s),Note(s)`, then the URL (quoted when it holds ',' or '"'), the
place (GET, POST, Cookie, URI, a header), the parameter name written as it is, the techniques' letters (BEUSTQ) and
its notes joined with ';'. A cookie sqlmap took from the server may name a parameter holding ',': the parser takes
the two fields after the place and before the last two as one name, so the server cannot move the other fields.
Detection only, by construction: the params hold nothing but URLs, techniques, a level and a rate; risk stays at 1
(no OR-based or heavy payloads), --batch answers every question with its default except two answered no: extending
the tests past level and risk for the DBMS found, and exploiting an injection found (which would fingerprint).
No dump, file, OS, shell, tamper or proxy option exists to give. Redirects are ignored (--ignore-redirects), so a URL's
host is the whole scope. sqlmap is single-threaded here and sleeps --delay seconds before every request
(lib/request/connect.py, getPage), so a rate becomes --delay=1/rate, rounded up to the millisecond.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

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
REPORT_FILE = "sqlmap.csv"
MAX_TARGETS = 1000
HEADER = ["Target URL", "Place", "Parameter", "Technique(s)", "Note(s)"]
TECHNIQUES = {
    "B": "boolean-based blind",
    "E": "error-based",
    "U": "UNION query",
    "S": "stacked queries",
    "T": "time-based blind",
    "Q": "inline queries",
}
# Fixed answers to sqlmap's questions (substring=answer): never extend past risk 1, never exploit what it found.
ANSWERS = "extending=N,exploit=N"
_PARAMETER = re.compile(r"[A-Za-z0-9_.\-\[\]]{1,64}")
_TECHNIQUES = re.compile(r"(?!.*(.).*\1)[BEUSTQ]{1,6}")  # each letter at most once


def _injectable_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.fragment or "@" in parts.netloc:
        raise ValueError(f"url {value!r} must have no fragment or user info")
    names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
    if not names:
        raise ValueError(f"url {value!r} has no query parameter to test (write it as ...?id=1)")
    for name in names:
        if not _PARAMETER.fullmatch(name):
            raise ValueError(f"parameter name {name!r} must be 1-64 letters, digits, '_', '.', '-', '[' or ']'")
    return value


def _techniques(value: str) -> str:
    if not _TECHNIQUES.fullmatch(value):
        raise ValueError(f"techniques {value!r} must be letters of BEUSTQ, each at most once")
    return value


class SqlmapParams(ToolParams):
    """Which URLs to test (their query parameters), by which techniques, how deep, and how fast."""

    targets: tuple[Annotated[WebUrl, AfterValidator(_injectable_url)], ...] = Field(
        min_length=1, max_length=MAX_TARGETS, description="http(s) URLs with the query parameters to test"
    )
    techniques: Annotated[str, AfterValidator(_techniques)] = Field(
        default="BEU",
        description="B boolean-based blind, E error-based, U UNION query, S stacked queries, T time-based blind,"
        " Q inline queries (default BEU: S and T send heavier payloads)",
    )
    level: int = Field(default=1, ge=1, le=5, description="sqlmap's level: 2 adds cookies, 3 User-Agent and Referer")
    rate: float | None = Field(
        default=None,
        ge=0.001,
        le=1000,
        description="at most this many requests a second (decimals allowed): a pause before each (--delay)",
    )


def build(params: SqlmapParams) -> Invocation:
    """URLs through -m, the CSV results to /outputs, its own files in /tmp; batch mode with fixed answers."""
    argv = [
        "-m", input_path(TARGETS_FILE), f"--results-file={output_path(REPORT_FILE)}", "--output-dir=/tmp/sqlmap",
        "--batch", f"--answers={ANSWERS}", "--risk=1", f"--level={params.level}",
        f"--technique={params.techniques}", "--ignore-redirects", "--disable-coloring",
    ]  # fmt: skip
    if params.rate is not None:
        argv.append(f"--delay={math.ceil(1000 / params.rate) / 1000:g}")
    return Invocation(argv=argv, input_files={TARGETS_FILE: lines(params.targets)}, output_files=[REPORT_FILE])


def parse(outputs: Outputs) -> Iterator[Finding]:
    """One finding per CSV line after the header, read a line at a time.

    sqlmap writes each target's lines whole once it is done with it, so a killed run leaves complete lines (a last
    line cut off mid-write is dropped); a header of another shape or a line with too few fields raises ParseError.
    """
    stream = outputs.get(REPORT_FILE)
    if stream is None:
        return
    number = 0
    while line := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES:
            raise ParseError(f"line {number} of the sqlmap results is longer than {MAX_LINE_BYTES} bytes")
        if not line.strip() or not line.endswith(b"\n"):
            continue  # blank, or the last line of a killed run
        fields = next(csv.reader([line.decode("utf-8", errors="replace").rstrip("\r\n")]))
        if number == 1:
            if fields != HEADER:
                raise ParseError(f"the sqlmap results do not start with its header: {line[:80]!r}")
            continue
        yield _finding(fields, number)


def _finding(fields: list[str], number: int) -> Finding:
    if len(fields) < len(HEADER):
        raise ParseError(f"line {number} of the sqlmap results has {len(fields)} fields, not {len(HEADER)}")
    url, place, *name, codes, notes = fields
    if not set(codes) <= TECHNIQUES.keys():
        raise ParseError(f"line {number} of the sqlmap results names unknown techniques: {codes[:20]!r}")
    return {
        "url": url,
        "place": place,
        "parameter": ",".join(name),
        "technique_codes": codes,
        "techniques": [TECHNIQUES[code] for code in codes],
        "notes": [note for note in notes.split(";") if note],
    }


def targets(params: SqlmapParams) -> Iterator[Target]:
    """Each URL: sqlmap requests it with its parameters changed and follows no redirect."""
    for url in params.targets:
        yield TargetKind.URL, url


SPEC = ToolSpec(
    name="sqlmap",
    # Debian's sqlmap in the local tools image (scripts/build-images tools); TOOLRUNNER_IMAGE_SQLMAP overrides.
    image="toolrunner-tools:local",
    entrypoint=["sqlmap"],
    params_model=SqlmapParams,
    build=build,
    parse=parse,
    version=1,
    default_timeout=900,
    description="SQL injection detection (sqlmap, risk 1, detection only): which URL parameters are injectable.",
    targets=targets,
    finding_hosts=("url",),
    rate_param="rate",
    rate_integer=False,
    chunking=Chunking("targets", 20),
    intrusive=True,  # it sends injection payloads that a fragile application may act on
    finding_fields={
        "url": "the tested URL as given",
        "place": "where the parameter is: GET, POST, Cookie, URI or a header's name (User-Agent, Referer, Host)",
        "parameter": "the injectable parameter's name",
        "technique_codes": "sqlmap's letters of the techniques that worked (BEUSTQ)",
        "techniques": "their names: boolean-based blind, error-based, UNION query, stacked queries,"
        " time-based blind, inline queries",
        "notes": "sqlmap's notes on the injection point (e.g. false positive or unexploitable), often none",
    },
)
