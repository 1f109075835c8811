"""What a tool is: its image, params model, argv and input files, output files, and a streaming parser."""

from __future__ import annotations

import enum
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from pydantic import BaseModel, ConfigDict, Field

from tasks.errors import ParseError as ParseError  # in the one tree; tool modules import it from here
from tasks.tools.chunking import Chunking

INPUTS = "/inputs"
OUTPUTS = "/outputs"
# One JSON line larger than this is refused rather than read into memory (the tools write well under 64 KiB a line).
MAX_LINE_BYTES = 4 * 1024 * 1024

Finding = dict[str, Any]
Outputs = Mapping[str, BinaryIO]  # one readable binary stream per output file the tool wrote
Parser = Callable[[Outputs], Iterator[Finding]]


class LineReader(Protocol):
    """What jsonl_records reads: a binary stream's readline, or a filter over one (whatweb's)."""

    def readline(self, size: int = -1, /) -> bytes: ...


class ToolParams(BaseModel):
    """Base of every tool's params: unknown keys are rejected; every tool takes a timeout and a cache age."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_seconds: int | None = Field(default=None, ge=1, description="wall-clock limit for the tool container")
    cache_max_age_seconds: int = Field(
        default=0, ge=0, description="reuse a stored ok result of an identical run up to this old; 0 = no cache"
    )
    chunk_size: int | None = Field(
        default=None, ge=1, description="at most this many targets a chunk (below the tool's own); tools that split"
    )


class TargetKind(enum.Enum):
    """How a tool reads a target it is given: the scope check reads it the same way (tasks/scope/host.py)."""

    HOST = "host"  # an IP address, a CIDR network or a hostname (nmap, naabu)
    DOMAIN = "domain"  # a DNS name the tool asks about or enumerates (dnsx, subfinder)
    WEB = "web"  # host, host:port or an http(s) URL (httpx, nuclei)
    URL = "url"  # an absolute http(s) URL (ffuf)
    RESOLVER = "resolver"  # a DNS server the tool queries: the operator's list, never the tenant's scope


Target = tuple[TargetKind, str]


@dataclass(frozen=True)
class Invocation:
    """One run of a tool: argv after the entrypoint, files for /inputs, files it writes in /outputs."""

    argv: list[str]
    input_files: dict[str, str | bytes] = field(default_factory=dict)
    output_files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ToolSpec:
    """Everything the worker needs to run one tool; each module in tasks/tools/ exports one as SPEC."""

    name: str
    image: str
    entrypoint: list[str]
    params_model: type[ToolParams]
    build: Callable[[Any], Invocation]
    parse: Parser
    default_timeout: int = 600
    description: str = ""
    cap_add: tuple[str, ...] = ()
    # None runs the tool as the worker's non-root default user (isolation.TOOL_USER); "0:0" would be root.
    user: str | None = None
    network: str | None = None
    finding_fields: Mapping[str, str] = field(default_factory=dict)
    # Changes whenever build or parse change meaning, so results cached under an older version are not reused.
    version: int = 1
    # Variables the tool needs in its container: fixed by the spec, never secrets, never from the request.
    environment: Mapping[str, str] = field(default_factory=dict)
    # Every place a run's params send the tool, as the tool reads them; None = the tool contacts nothing
    # (only allowed with network "none": a tool with network access and no targets is refused).
    targets: Callable[[Any], Iterable[Target]] | None = None
    # Why these params would take the tool outside its targets (a redirect to any host), or None: refused
    # while scope is enforced.
    wanders: Callable[[Any], str | None] | None = None
    # The finding fields that name the host a finding is about (an address, a name or a URL): a finding none of
    # whose present fields is in the tenant's scope is marked out_of_scope (a name in scope is enough).
    finding_hosts: tuple[str, ...] = ()
    # The params field that caps the requests (packets, for port scanners) the tool sends a second, so the worker
    # can grant a rate (tasks.tools.rates.with_rate); None = the tool cannot be told one (its module says why).
    rate_param: str | None = None
    # Whether that field takes only whole numbers: a granted rate is then floored, never below 1.
    rate_integer: bool = True
    # How its targets split into chunks that run as runs of their own on any worker (tasks/tools/chunking.py);
    # None = the tool does not split (a request over its params' cap is refused).
    chunking: Chunking | None = None
    # Whether the tool can harm a target (injection, brute force): it runs only for tenants an operator opted in
    # (`toolrunner limits set --tenant T --allow-intrusive`); any other tenant's run is refused as bad input.
    intrusive: bool = False

    def __post_init__(self) -> None:
        if self.rate_param is not None and self.rate_param not in self.params_model.model_fields:
            raise ValueError(f"{self.name}: rate_param {self.rate_param!r} is no field of {self.params_model.__name__}")
        if self.chunking is not None and self.chunking.field not in self.params_model.model_fields:
            raise ValueError(f"{self.name}: chunking field {self.chunking.field!r} is no field of its params")


# The label scripts/build-images gives a local image per Debian package it installed (toolrunner.package.nmap=7.93…)
PACKAGE_LABEL = "toolrunner.package."
_FLOATING_TAGS = frozenset({"latest", "local"})


def tool_version(tool: str, image: str, labels: Mapping[str, str]) -> str:
    """The version of `tool` in `image`, from what the image records; "unknown" when it records nothing.

    In order: the Debian package's version scripts/build-images labelled the image with (the package named
    as the tool), the image's OCI version label, the reference's tag unless it floats (latest, local).
    """
    if version := labels.get(PACKAGE_LABEL + tool):
        return version
    if version := labels.get("org.opencontainers.image.version"):
        return version
    tag = image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]  # a registry's :port sits before a /
    return tag if tag and tag not in _FLOATING_TAGS else "unknown"


def jsonl_records(stream: LineReader | None) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines stream, read one b"\\n"-terminated line at a time.

    Blank lines and values that are not objects are skipped; an undecodable last line (a tool killed
    mid-write) ends the records silently; any other unreadable line raises ParseError.
    """
    if stream is None:
        return
    number = 0
    while line := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES:
            raise ParseError(f"line {number} of the output is longer than {MAX_LINE_BYTES} bytes")
        record = _json_line(line, number, stream)
        if isinstance(record, dict):
            yield record


def _json_line(line: bytes, number: int, stream: LineReader) -> Any:
    """One line as JSON; None for a blank line or an undecodable last line."""
    # Go's encoder writes valid UTF-8; replacing keeps a stray byte from failing the whole line.
    text = line.decode("utf-8", errors="replace")
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except RecursionError:
        raise ParseError(f"line {number} of the output is nested too deeply") from None
    except ValueError:
        if _only_blank_lines_left(stream):
            return None  # a tool killed mid-write leaves half a line: keep what was complete
        raise ParseError(f"line {number} of the output is not JSON: {text[:80]!r}") from None


def _only_blank_lines_left(stream: LineReader) -> bool:
    while rest := stream.readline(MAX_LINE_BYTES + 1):
        if rest.strip():
            return False
    return True


def parse_bytes(spec: ToolSpec, outputs: Mapping[str, bytes]) -> list[Finding]:
    """Every finding of outputs held in memory (tests, small outputs); the runner streams files instead."""
    return list(spec.parse({name: io.BytesIO(data) for name, data in outputs.items()}))


def output_path(name: str) -> str:
    """The in-container path of an output file."""
    return f"{OUTPUTS}/{name}"


def input_path(name: str) -> str:
    """The in-container path of an input file."""
    return f"{INPUTS}/{name}"
