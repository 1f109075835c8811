"""gobuster: request each word of a wordlist under one URL (dir) or as its Host (vhost); each hit is a finding.

Debian's gobuster 3.5.0 has no machine-readable output: -o writes the lines gobusterdir/result.go's
ResultToString makes, which with -e (full URLs) and --no-color are exactly
`<url><path padded to 20> (Status: <code>) [Size: <bytes>]` and ` [--> <Location>]` when the response had one.
In vhost mode (gobustervhost/result.go) a line is `Found: <name> Status: <code> [Size: <bytes>]` and the same
Location. The parser reads line by line with one anchored pattern a mode; the URL, path and name come from this
run's own params (no whitespace), so only the Location, the last field, is the server's.
vhost mode sends every request to the URL with the word (plus "." and domain, when given) as its Host header: the
names are asked of that server, never looked up, so the scope reads them as domains, not as hosts contacted.
gobuster appends "/" to the URL and requests URL + word (gobusterdir.go), so a word never moves the host.
Each of its threads sleeps --delay after every word it requests (libgobuster.go, worker), as ffuf 1.1's do, so a
rate becomes the most threads (up to threads, or gobuster's 10) with a delay of 1/n s, threads * n <= rate: no
second can hold more than rate requests however the threads fall into step.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

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
from tasks.tools.validation import DomainName, StatusCode, WebUrl, dns_name, lines

WORDLIST_FILE = "wordlist.txt"
REPORT_FILE = "gobuster.txt"
MAX_WORDS = 100_000
DEFAULT_THREADS = 10  # gobuster 3.5.0 cli/cmd/root.go: --threads default 10
# No whitespace or control characters (one line, one word); not starting with '#', which gobuster skips as a comment.
_WORD = re.compile(r"(?!#)[^\s\x00-\x1f\x7f-\x9f]{1,256}")
_EXTENSION = re.compile(r"[A-Za-z0-9_~][A-Za-z0-9_~-]{0,15}")
_VHOST_LINE = re.compile(
    rb"Found: (?P<vhost>\S+) Status: (?P<status>\d{3}) \[Size: (?P<size>-?\d+)\](?: \[--> (?P<location>.*)\])?"
)
_LINE = re.compile(
    rb"(?P<url>\S+?) +\(Status: (?P<status>\d{3})\)(?: \[Size: (?P<size>-?\d+)\])?(?: \[--> (?P<location>.*)\])?"
)


def _word(value: str) -> str:
    if not _WORD.fullmatch(value):
        raise ValueError(f"word {value!r} must be 1-256 characters without whitespace or control characters, not #...")
    return value


def _extension(value: str) -> str:
    value = value.removeprefix(".")
    if not _EXTENSION.fullmatch(value):
        raise ValueError(f"extension {value!r} must look like php (letters, digits, _ ~ -)")
    return value


def _base(value: str) -> str:
    parts = urlsplit(value)
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError("url must have no query, fragment or user info: gobuster appends / and each word to it")
    return value


class GobusterParams(ToolParams):
    """Where to look (a base URL), the words to try under it or as its Host, and which statuses count."""

    mode: Literal["dir", "vhost"] = Field(default="dir", description="dir: paths under url; vhost: Host names at url")
    url: Annotated[WebUrl, AfterValidator(_base)] = Field(description="an http(s) URL; each word is requested under it")
    wordlist: tuple[Annotated[str, AfterValidator(_word)], ...] = Field(min_length=1, max_length=MAX_WORDS)
    match_codes: tuple[StatusCode, ...] | None = Field(
        default=None, min_length=1, max_length=50, description="statuses that count (default: every one but 404)"
    )
    extensions: tuple[Annotated[str, AfterValidator(_extension)], ...] = Field(default=(), max_length=20)
    domain: DomainName | None = Field(
        default=None, description="vhost only: appended to each word (--append-domain --domain); else words are names"
    )
    threads: int | None = Field(default=None, ge=1, le=100)
    rate: float | None = Field(
        default=None,
        ge=0.001,
        le=100_000,
        description="at most this many requests a second (decimals allowed): threads (-t) and a delay (--delay)",
    )

    @model_validator(mode="after")
    def _mode_options(self) -> GobusterParams:
        if self.mode == "dir" and self.domain is not None:
            raise ValueError("domain is for mode vhost only")
        if self.mode == "vhost":
            if self.match_codes or self.extensions:
                raise ValueError("match_codes and extensions are for mode dir only")
            for word in self.wordlist:
                dns_name(word)  # a Host header: a name (or, with domain, its first labels)
        return self

    def names(self) -> list[str]:
        """vhost mode: the Host names the words make, as gobuster makes them."""
        return [f"{word}.{self.domain}" if self.domain else word for word in self.wordlist]


@dataclass(frozen=True)
class Pace:
    """Threads and a delay each sleeps after every request, in whole milliseconds, that keep gobuster within a rate."""

    threads: int
    delay_ms: int

    def argv(self) -> list[str]:
        """-t and --delay (a Go duration)."""
        return ["-t", str(self.threads), "--delay", f"{self.delay_ms}ms"]


def pace(rate: float, threads: int | None = None) -> Pace:
    """The most threads (up to threads, or 10) and a delay of 1/n s with threads * n <= rate; below 1/s one thread."""
    if rate < 1:
        return Pace(threads=1, delay_ms=math.ceil(1000 / rate))
    rounds = math.ceil(math.floor(rate) / (threads or DEFAULT_THREADS))
    return Pace(threads=math.floor(rate / rounds), delay_ms=math.ceil(1000 / rounds))


def build(params: GobusterParams) -> Invocation:
    """The wordlist from /inputs, the result lines to /outputs (dir: with full URLs, -e), quiet and plain."""
    argv = [params.mode, "-u", params.url, "-w", input_path(WORDLIST_FILE), "-o", output_path(REPORT_FILE)]
    argv += ["-e", "-q", "-z", "--no-color"] if params.mode == "dir" else ["-q", "-z", "--no-color"]
    if params.domain:
        argv += ["--append-domain", "--domain", params.domain]
    if params.match_codes:  # -s counts only once the default blacklist (404) is emptied
        argv += ["-s", ",".join(str(code) for code in params.match_codes), "-b", ""]
    if params.extensions:
        argv += ["-x", ",".join(params.extensions)]
    if params.rate is not None:
        argv += pace(params.rate, params.threads).argv()
    elif params.threads is not None:
        argv += ["-t", str(params.threads)]
    return Invocation(argv=argv, input_files={WORDLIST_FILE: lines(params.wordlist)}, output_files=[REPORT_FILE])


def parse(outputs: Outputs) -> Iterator[Finding]:
    """One finding per result line; blank lines are skipped, a line of another shape raises ParseError.

    gobuster writes each line whole as it finds it, so a killed run leaves complete lines (a last line cut off
    mid-write is dropped).
    """
    stream = outputs.get(REPORT_FILE)
    if stream is None:
        return
    number = 0
    while line := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES:
            raise ParseError(f"line {number} of the gobuster output is longer than {MAX_LINE_BYTES} bytes")
        if not line.strip() or not line.endswith(b"\n"):
            continue  # blank, or the last line of a killed run
        match = _LINE.fullmatch(line.rstrip(b"\r\n")) or _VHOST_LINE.fullmatch(line.rstrip(b"\r\n"))
        if match is None:
            raise ParseError(f"line {number} of the gobuster output is not a result: {line[:80]!r}")
        yield _finding(match)


def _finding(match: re.Match[bytes]) -> Finding:
    def text(group: str) -> Any:
        value = match[group]
        return value.decode("utf-8", errors="replace") if value is not None else None

    size, fields = match["size"], match.re.groupindex
    return {
        "url": text("url") if "url" in fields else None,
        "vhost": text("vhost") if "vhost" in fields else None,
        "status": int(match["status"]),
        "size": int(size) if size is not None else None,
        "redirect_location": text("location"),
    }


def targets(params: GobusterParams) -> Iterator[Target]:
    """The URL, where every request goes (a dir word only ever extends its path), and in vhost mode each name."""
    yield TargetKind.URL, params.url
    if params.mode == "vhost":
        yield from ((TargetKind.DOMAIN, name) for name in dict.fromkeys(params.names()))


SPEC = ToolSpec(
    name="gobuster",
    # Debian's gobuster in the local tools image (scripts/build-images tools); TOOLRUNNER_IMAGE_GOBUSTER overrides.
    image="toolrunner-tools:local",
    entrypoint=["gobuster"],
    params_model=GobusterParams,
    build=build,
    parse=parse,
    version=2,
    default_timeout=900,
    description="Web content discovery (gobuster): paths under a URL (dir mode), virtual hosts it serves (vhost mode).",
    targets=targets,
    finding_hosts=("url", "vhost"),
    rate_param="rate",
    intrusive=True,  # a brute forcer: up to 100,000 requests a run at a server
    rate_integer=False,
    finding_fields={
        "url": "dir: the requested URL (the base URL and the word, plus extension with -x); vhost: null",
        "vhost": "vhost: the Host name whose response differs from the server's default and a random name's; dir: null",
        "status": "the HTTP status code",
        "size": "the response size in bytes as gobuster reports it",
        "redirect_location": "the Location header of the response, or null",
    },
)
