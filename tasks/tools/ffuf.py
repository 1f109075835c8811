"""ffuf: fuzz one URL's FUZZ keyword with a wordlist; each matched response is a finding."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from tasks.tools.base import Finding, Invocation, ToolParams, ToolSpec, input_path, output_path
from tasks.tools.validation import StatusCode, WebUrl, lines

WORDLIST_FILE = "wordlist.txt"
REPORT_FILE = "ffuf.json"
MAX_WORDS = 100_000
_WORD = re.compile(r"[^\s\x00-\x1f\x7f]{1,256}")
_EXTENSION = re.compile(r"\.?[A-Za-z0-9_~][A-Za-z0-9_~-]{0,15}")


def _fuzz(value: str) -> str:
    """Accept a URL that holds the FUZZ keyword (checked after WebUrl has accepted it)."""
    if "FUZZ" not in value:
        raise ValueError("url must contain the FUZZ keyword")
    return value


def _word(value: str) -> str:
    if not _WORD.fullmatch(value):
        raise ValueError(f"word {value!r} must be 1-256 characters without whitespace or control characters")
    return value


def _extension(value: str) -> str:
    if not _EXTENSION.fullmatch(value):
        raise ValueError(f"extension {value!r} must look like .php (letters, digits, _ ~ -)")
    return value if value.startswith(".") else f".{value}"


class FfufParams(ToolParams):
    """What to fuzz: a URL with FUZZ, the words to put there, and which responses count as hits."""

    url: Annotated[WebUrl, AfterValidator(_fuzz)]
    wordlist: tuple[Annotated[str, AfterValidator(_word)], ...] = Field(min_length=1, max_length=MAX_WORDS)
    match_codes: tuple[StatusCode, ...] | None = Field(default=None, min_length=1, max_length=50)
    extensions: tuple[Annotated[str, AfterValidator(_extension)], ...] = Field(default=(), max_length=20)
    threads: int | None = Field(default=None, ge=1, le=100)
    follow_redirects: bool = False


def build(params: FfufParams) -> Invocation:
    """Write the wordlist to /inputs and the JSON report to /outputs; -s keeps stdout to the hits."""
    # No -noninteractive: Debian's ffuf 1.1.0 rejects it, and 2.x copes with a missing tty anyway.
    argv = ["-u", params.url, "-w", input_path(WORDLIST_FILE)]
    argv += ["-of", "json", "-o", output_path(REPORT_FILE), "-s"]
    if params.match_codes:
        argv += ["-mc", ",".join(str(code) for code in params.match_codes)]
    if params.extensions:
        argv += ["-e", ",".join(params.extensions)]
    if params.threads is not None:
        argv += ["-t", str(params.threads)]
    if params.follow_redirects:
        argv.append("-r")
    return Invocation(argv=argv, input_files={WORDLIST_FILE: lines(params.wordlist)}, output_files=[REPORT_FILE])


def parse(outputs: Mapping[str, bytes]) -> list[Finding]:
    """One finding per entry of results[] (ffuf 1.x and 2.x -of json); unreadable JSON gives no findings."""
    try:
        report = json.loads(outputs.get(REPORT_FILE, b"").decode("utf-8", errors="replace"))
    except json.JSONDecodeError:
        return []  # ffuf writes the report once, at the end: a killed run leaves nothing usable
    results = report.get("results") if isinstance(report, dict) else None
    if not isinstance(results, list):
        return []
    return [_finding(result) for result in results if isinstance(result, dict)]


def _finding(result: dict[str, Any]) -> Finding:
    inputs = result.get("input")
    word = inputs.get("FUZZ") if isinstance(inputs, dict) else None
    return {
        "input": word if isinstance(word, str) else None,
        "url": result.get("url"),
        "status": result.get("status"),
        "length": result.get("length"),
        "words": result.get("words"),
        "lines": result.get("lines"),
        "content_type": result.get("content-type") or None,
        "redirect_location": result.get("redirectlocation") or None,
    }


SPEC = ToolSpec(
    name="ffuf",
    # ffuf publishes no official image; any image with ffuf on PATH works (TOOLRUNNER_IMAGE_FFUF overrides).
    image="toolrunner-tools:local",
    entrypoint=["ffuf"],
    params_model=FfufParams,
    build=build,
    parse=parse,
    default_timeout=900,
    description="Web content discovery: put each word in place of FUZZ in one URL and report the matches.",
    finding_fields={
        "input": "the word (plus extension, with -e) that replaced FUZZ",
        "url": "the requested URL",
        "status": "the HTTP status code",
        "length": "the response body length in bytes",
        "words": "the number of words in the response body",
        "lines": "the number of lines in the response body",
        "content_type": "the Content-Type header (ffuf 2.x only), or null",
        "redirect_location": "the Location header of a redirect, or null",
    },
)
