"""dnsx: resolve a list of names for the asked record types; each (host, record type) answer is a finding."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, Field

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
from tasks.tools.validation import DnsName, lines

DOMAINS_FILE = "domains.txt"
RESOLVERS_FILE = "resolvers.txt"
REPORT_FILE = "dnsx.jsonl"
MAX_DOMAINS = 100_000
_ADDRESS = r"[0-9A-Fa-f:.]+"
_RESOLVER = re.compile(
    rf"(?:udp:|tcp:|dot:)?(?:\[(?P<bracketed>{_ADDRESS})\]:(?P<port>[0-9]{{1,5}})|(?P<bare>{_ADDRESS}))"
)

RecordType = Literal["a", "aaaa", "cname", "ns", "txt", "srv", "ptr", "mx", "soa", "caa"]
RECORD_TYPES: tuple[str, ...] = get_args(RecordType)


def _resolver(value: str) -> str:
    """Accept an IP resolver, optionally with a udp:/tcp:/dot: prefix and a port, as dnsx splits them."""
    match = _RESOLVER.fullmatch(value)
    if match is None:
        raise ValueError(f"resolver {value!r} must look like 1.1.1.1, 1.1.1.1:53 or [2001:db8::1]:53")
    address, port = match["bracketed"] or match["bare"], match["port"]
    if match["bare"] and address.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has several colons
        address, port = address.split(":")
    ipaddress.ip_address(address)  # raises ValueError for a bad address
    if port is not None and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"resolver port in {value!r} must be within 1-65535")
    return value


class DnsxParams(ToolParams):
    """What to resolve: the names, which record types, and optionally which resolvers to ask."""

    domains: tuple[DnsName, ...] = Field(min_length=1, max_length=MAX_DOMAINS)
    record_types: tuple[RecordType, ...] = Field(default=("a",), min_length=1, max_length=len(RECORD_TYPES))
    resolvers: tuple[Annotated[str, AfterValidator(_resolver)], ...] = Field(default=(), max_length=100)
    rate_limit: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description=(
            "at most this many DNS queries a second for the whole run (-rl); they go to the resolvers, never to"
            " the hosts named, so this spares the resolvers (and the zones' name servers behind them)"
        ),
    )


def build(params: DnsxParams) -> Invocation:
    """Names (and resolvers) go in as files; one flag per record type; -omit-raw keeps the JSON small."""
    argv = ["-l", input_path(DOMAINS_FILE), "-json", "-o", output_path(REPORT_FILE), "-silent", "-duc"]
    argv.append("-omit-raw")
    argv += [f"-{record_type}" for record_type in dict.fromkeys(params.record_types)]
    files: dict[str, str | bytes] = {DOMAINS_FILE: lines(params.domains)}
    if params.resolvers:
        argv += ["-r", input_path(RESOLVERS_FILE)]
        files[RESOLVERS_FILE] = lines(params.resolvers)
    if params.rate_limit is not None:
        argv += ["-rl", str(params.rate_limit)]
    return Invocation(argv=argv, input_files=files, output_files=[REPORT_FILE])


def parse(outputs: Outputs) -> Iterator[Finding]:
    """One finding per record type present for a host; a host with none of its own (e.g. NXDOMAIN) gives one.

    dnsx merges the answer, additional and authority sections, so a negative reply carries the SOA of
    the zone above: a SOA whose owner is not the host is not the host's record; its owner is kept as
    zone. A line without a host (e.g. `{}`) is no finding.
    """
    for record in jsonl_records(outputs.get(REPORT_FILE)):
        host = record.get("host")
        if isinstance(host, str) and host:
            yield from _host_findings(record, host)


def _host_findings(record: dict[str, Any], host: str) -> Iterator[Finding]:
    soas = [soa for soa in _items(record.get("soa")) if isinstance(soa, dict)]
    own = {**record, "soa": [soa for soa in soas if _same_name(soa.get("name"), host)]}
    zone = next((soa["name"] for soa in soas if isinstance(soa.get("name"), str)), None)
    found = [_finding(record, t, _values(own[t]), zone) for t in RECORD_TYPES if own.get(t)]
    yield from found or [_finding(record, None, [], zone)]


def _same_name(owner: Any, host: str) -> bool:
    """Whether a record's owner is the host: DNS names compare without case and trailing dot."""
    return isinstance(owner, str) and owner.rstrip(".").lower() == host.rstrip(".").lower()


def _items(raw: Any) -> list[Any]:
    return raw if isinstance(raw, list) else [raw]


def _values(raw: Any) -> list[str]:
    """Record values as strings; SOA records (objects) are rendered in zone-file order."""
    return [_soa(item) if isinstance(item, dict) else str(item) for item in _items(raw)]


def _soa(soa: dict[str, Any]) -> str:
    keys = ("ns", "mailbox", "serial", "refresh", "retry", "expire", "minttl")
    return " ".join(str(soa.get(key, "")) for key in keys)


def _finding(record: dict[str, Any], record_type: str | None, values: list[str], zone: str | None) -> Finding:
    resolvers = record.get("resolver")
    return {
        "host": record.get("host"),
        "record_type": record_type,
        "values": values,
        "ttl": record.get("ttl"),
        # retryabledns appends each resolver it got a reply from: the last one's reply is what dnsx reports.
        "resolver": resolvers[-1] if isinstance(resolvers, list) and resolvers else None,
        "status_code": record.get("status_code"),
        "zone": zone,
    }


def targets(params: DnsxParams) -> Iterator[Target]:
    """The names asked about (through resolvers: never contacted) and the resolvers queried."""
    yield from ((TargetKind.DOMAIN, domain) for domain in params.domains)
    yield from ((TargetKind.RESOLVER, resolver) for resolver in params.resolvers)


SPEC = ToolSpec(
    name="dnsx",
    image="projectdiscovery/dnsx:v1.2.3",
    entrypoint=["dnsx"],
    params_model=DnsxParams,
    build=build,
    parse=parse,
    version=5,
    default_timeout=900,
    description="DNS resolution of many names for A, AAAA, CNAME, NS, TXT, SRV, PTR, MX, SOA or CAA records.",
    targets=targets,
    finding_hosts=("host",),
    rate_param="rate_limit",
    chunking=Chunking("domains", 1000, Unit.ITEMS),
    finding_fields={
        "host": "the name that was resolved",
        "record_type": (
            "a, aaaa, cname, ns, txt, srv, ptr, mx, soa or caa; null when no record of the host came back"
            " (NXDOMAIN, no data, or only the SOA of the zone above)"
        ),
        "values": "the record values as strings (SOA as 'ns mailbox serial refresh retry expire minttl')",
        "ttl": (
            "one TTL per host and response, not per record: the first non-zero TTL among all the records"
            " dnsx merged for the host (answer, additional and authority), or null"
        ),
        "resolver": "the resolver whose reply is reported (the last one dnsx asked), as host:port, or null",
        "status_code": "the DNS response code, e.g. NOERROR, NXDOMAIN, SERVFAIL",
        "zone": (
            "the owner name of the SOA in the reply: the host itself, or the zone above it that answered"
            " a negative reply; null when the reply carried no SOA"
        ),
    },
)
