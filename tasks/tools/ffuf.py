"""ffuf: fuzz one URL's FUZZ keyword with a wordlist; each matched response is a finding.

Debian's ffuf 1.1.0 has no -rate (2.x has), so a rate becomes threads -t and a delay -p. In 1.1.0
(pkg/ffuf/job.go, startExecution) a buffered channel of -t slots limits concurrency: each request runs in
a goroutine holding a slot, sleeps the delay after its response, and only then frees the slot. So a slot
starts a request at most once every delay plus response time, and -t slots at most -t times that. The
delay is slept as time.Duration(seconds * 1000) * time.Millisecond: the float is truncated to whole
milliseconds, and "1.001" (1000.9999... after the multiplication) sleeps 1000 ms.
Every slot starts its first request at once and slots stay nearly in step while responses are quick, so a
delay of -t / rate keeps the mean under the rate but lets one second see more than the rate: measured against a
local server, -t 40 -p 0.8 (50/s) peaked at 56, 57 and 60 requests in one second, -t 2 -p 0.8 (2.5/s) at 4.
pace() therefore makes the delay a whole fraction of a second, 1/n, with n * t <= rate, so no second can hold
more than rate starts (each slot starts at most n): -t 25 -p 0.5005 (50/s) peaked at 50 in every run, -t 20
-p 1.0005 (20/s) at 20, -t 2 -p 1.0005 (2.5/s) at 2, -t 1 -p 2.0005 (0.5/s) at 1 with a mean of 0.50.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, BinaryIO
from urllib.parse import urlsplit

import ijson  # type: ignore[import-untyped]
from pydantic import AfterValidator, Field, model_validator

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
    output_path,
)
from tasks.tools.validation import StatusCode, WebUrl, lines

WORDLIST_FILE = "wordlist.txt"
REPORT_FILE = "ffuf.json"
MAX_WORDS = 100_000
_WORD = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]{1,256}")
KEYWORD = "FUZZ"
# Nesting deeper than this is refused; ffuf's report nests four levels (report, results, result, input).
MAX_DEPTH = 32
_OPEN = frozenset({"start_map", "start_array"})
_CLOSE = frozenset({"end_map", "end_array"})
_EXTENSION = re.compile(r"\.?[A-Za-z0-9_~][A-Za-z0-9_~-]{0,15}")
DEFAULT_THREADS = 40  # ffuf 1.1.0 main.go: flag.IntVar(&conf.Threads, "t", 40, ...)


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

    url: Annotated[WebUrl, AfterValidator(_fuzz)] = Field(
        description="an http(s) URL with FUZZ in its path or query (or, with fuzz_host, its host or port)"
    )
    wordlist: tuple[Annotated[str, AfterValidator(_word)], ...] = Field(min_length=1, max_length=MAX_WORDS)
    match_codes: tuple[StatusCode, ...] | None = Field(default=None, min_length=1, max_length=50)
    extensions: tuple[Annotated[str, AfterValidator(_extension)], ...] = Field(default=(), max_length=20)
    threads: int | None = Field(default=None, ge=1, le=100)
    rate: float | None = Field(
        default=None,
        ge=0.001,
        le=100_000,
        description=(
            "at most this many requests a second (decimals allowed); ffuf 1.1 has no -rate, so it becomes threads"
            " (-t, never more than threads) and a delay after each request (-p)"
        ),
    )
    follow_redirects: bool = False
    fuzz_host: bool = Field(
        default=False,
        description=(
            "allow FUZZ in the URL's host or port: the words then choose which hosts and ports are contacted,"
            " so the worker checks every word, placed into the URL, against the tenant's scope (and leases each"
            " host it reaches) before the run starts"
        ),
    )

    @model_validator(mode="after")
    def _fuzz_only_where_allowed(self) -> FfufParams:
        refused = _fuzz_outside_path_and_query(self.url, allow_host=self.fuzz_host)
        if refused:
            hint = "" if self.fuzz_host or refused != "host or port" else " unless fuzz_host is true"
            raise ValueError(f"url may hold FUZZ only in its path or query, not in its {refused}{hint}")
        return self


def _fuzz_outside_path_and_query(url: str, *, allow_host: bool) -> str | None:
    """The part of url outside path and query that holds FUZZ, or None."""
    parts = urlsplit(url)
    userinfo, _, host_port = parts.netloc.rpartition("@")
    places = {"scheme": parts.scheme, "user info": userinfo, "fragment": parts.fragment}
    if not allow_host:
        places["host or port"] = host_port
    return next((place for place, text in places.items() if KEYWORD in text), None)


def build(params: FfufParams) -> Invocation:
    """Write the wordlist to /inputs and the JSON report to /outputs; -s keeps stdout to the hits."""
    # No -noninteractive: Debian's ffuf 1.1.0 rejects it, and 2.x copes with a missing tty anyway.
    argv = ["-u", params.url, "-w", input_path(WORDLIST_FILE)]
    argv += ["-of", "json", "-o", output_path(REPORT_FILE), "-s"]
    if params.match_codes:
        argv += ["-mc", ",".join(str(code) for code in params.match_codes)]
    if params.extensions:
        argv += ["-e", ",".join(params.extensions)]
    if params.rate is not None:
        argv += pace(params.rate, params.threads).argv()
    elif params.threads is not None:
        argv += ["-t", str(params.threads)]
    if params.follow_redirects:
        argv.append("-r")
    return Invocation(argv=argv, input_files={WORDLIST_FILE: lines(params.wordlist)}, output_files=[REPORT_FILE])


@dataclass(frozen=True)
class Pace:
    """Threads and a delay after each request, in whole milliseconds, that keep ffuf 1.1 within a rate."""

    threads: int
    delay_ms: int

    def argv(self) -> list[str]:
        """-t and -p; the half millisecond added survives ffuf's truncation to whole milliseconds exactly."""
        return ["-t", str(self.threads), "-p", f"{(self.delay_ms + 0.5) / 1000:.4f}"]


def pace(rate: float, threads: int | None = None) -> Pace:
    """The most threads (up to threads, or ffuf's 40) and a delay of 1/n s with threads * n <= rate.

    Below one request a second: one thread and a delay of 1/rate.
    """
    if rate < 1:
        return Pace(threads=1, delay_ms=math.ceil(1000 / rate))
    rounds = math.ceil(math.floor(rate) / (threads or DEFAULT_THREADS))  # n: times each slot may start a second
    return Pace(threads=math.floor(rate / rounds), delay_ms=math.ceil(1000 / rounds))


def parse(outputs: Outputs) -> Iterator[Finding]:
    """One finding per object in results[] (ffuf 1.x and 2.x -of json) with a url and a status.

    The report is one JSON document, read as a stream of events: one result at a time is built, so
    memory never grows with the report. An entry without url or status (e.g. `{}`) or one that is not
    an object is no finding. An empty report gives nothing (ffuf writes it once, at the end: a killed
    run leaves none); a report that ends early, is not JSON, nests deeper than MAX_DEPTH, or has a
    url or status of the wrong type raises ParseError after the findings before it.
    """
    stream = outputs.get(REPORT_FILE)
    if stream is None:
        return
    sniffer = _Sniffer(stream)
    try:
        for result in _results(ijson.basic_parse(sniffer, use_float=True)):
            if isinstance(result, dict) and result.get("url") is not None and result.get("status") is not None:
                yield _finding(result)
    except ijson.IncompleteJSONError:
        if not sniffer.blank:
            raise ParseError("the ffuf report ends early or is not JSON") from None
    except ijson.JSONError as exc:
        raise ParseError(f"the ffuf report is not JSON: {exc}") from None


class _Sniffer:
    """A reader that passes bytes through and remembers whether any of them was not whitespace."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.blank = True

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.blank = self.blank and not data.strip()
        return data


def _results(events: Iterable[tuple[str, Any]]) -> Iterator[Any]:
    """Each value of the top-level results array, built from parser events one value at a time."""
    depth, key, in_results, builder = 0, None, False, None
    for event, value in events:
        if builder is None and in_results and depth == 2 and event != "end_array":
            builder = ijson.ObjectBuilder()
        if builder is not None:
            builder.event(event, value)
        depth += (event in _OPEN) - (event in _CLOSE)
        if depth > MAX_DEPTH:
            raise ParseError(f"the ffuf report nests deeper than {MAX_DEPTH} levels")
        if builder is not None and depth == 2:
            yield builder.value
            builder = None
        key = value if depth == 1 and event == "map_key" else key
        in_results = depth >= 2 and (in_results or (event == "start_array" and key == "results"))


def _finding(result: dict[str, Any]) -> Finding:
    inputs = result.get("input")
    word = inputs.get(KEYWORD) if isinstance(inputs, dict) else None
    url, status = result.get("url"), result.get("status")
    if not isinstance(url, str) or not _is_int(status):
        raise ParseError(f"an ffuf result has a url or status of the wrong type: {url!r:.80}, {status!r:.20}")
    return {
        "input": word if isinstance(word, str) else None,
        "url": url,
        "status": status,
        "length": _int_or_none(result.get("length")),
        "words": _int_or_none(result.get("words")),
        "lines": _int_or_none(result.get("lines")),
        "content_type": _str_or_none(result.get("content-type")),
        "redirect_location": _str_or_none(result.get("redirectlocation")),
    }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_or_none(value: Any) -> int | None:
    return value if _is_int(value) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def targets(params: FfufParams) -> Iterator[Target]:
    """The URL; with fuzz_host, the URL as each word (and word plus extension) makes it, as ffuf fills FUZZ."""
    if not params.fuzz_host or KEYWORD not in urlsplit(params.url).netloc:
        yield TargetKind.URL, params.url.replace(KEYWORD, "fuzz")  # FUZZ in the path or query leaves the host
        return
    endings = ("", *params.extensions)
    for word in dict.fromkeys(params.wordlist):
        yield from ((TargetKind.URL, params.url.replace(KEYWORD, word + ending)) for ending in endings)


def wanders(params: FfufParams) -> str | None:
    """ffuf -r follows redirects to any host, and Debian's ffuf 1.1 cannot keep them to one: refused in scope."""
    if params.follow_redirects:
        return "follow_redirects: ffuf follows redirects to any host and cannot be kept to the scope"
    return None


SPEC = ToolSpec(
    name="ffuf",
    # ffuf publishes no official image; any image with ffuf on PATH works (TOOLRUNNER_IMAGE_FFUF overrides).
    image="toolrunner-tools:local",
    entrypoint=["ffuf"],
    params_model=FfufParams,
    build=build,
    parse=parse,
    version=5,
    default_timeout=900,
    description="Web content discovery: put each word in place of FUZZ in one URL and report the matches.",
    targets=targets,
    wanders=wanders,
    finding_hosts=("url",),
    rate_param="rate",
    intrusive=True,  # a brute forcer: up to 100,000 requests a run at a server
    rate_integer=False,
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
