"""dnsx: resolve a list of names for the asked record types; each (host, record type) answer is a finding."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, Field

from tasks.tools.base import Finding, Invocation, ToolParams, ToolSpec, input_path, output_path, parse_jsonl
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


def build(params: DnsxParams) -> Invocation:
    """Names (and resolvers) go in as files; one flag per record type; -omit-raw keeps the JSON small."""
    argv = ["-l", input_path(DOMAINS_FILE), "-json", "-o", output_path(REPORT_FILE), "-silent", "-duc"]
    argv.append("-omit-raw")
    argv += [f"-{record_type}" for record_type in dict.fromkeys(params.record_types)]
    files: dict[str, str | bytes] = {DOMAINS_FILE: lines(params.domains)}
    if params.resolvers:
        argv += ["-r", input_path(RESOLVERS_FILE)]
        files[RESOLVERS_FILE] = lines(params.resolvers)
    return Invocation(argv=argv, input_files=files, output_files=[REPORT_FILE])


def parse(outputs: Mapping[str, bytes]) -> list[Finding]:
    """One finding per record type present for a host; a host with no records (e.g. NXDOMAIN) gives one."""
    findings: list[Finding] = []
    for record in parse_jsonl(outputs.get(REPORT_FILE, b"")):
        found = [_finding(record, t, _values(record[t])) for t in RECORD_TYPES if record.get(t)]
        findings += found or [_finding(record, None, [])]
    return findings


def _values(raw: Any) -> list[str]:
    """Record values as strings; SOA records (objects) are rendered in zone-file order."""
    items = raw if isinstance(raw, list) else [raw]
    return [_soa(item) if isinstance(item, dict) else str(item) for item in items]


def _soa(soa: dict[str, Any]) -> str:
    keys = ("ns", "mailbox", "serial", "refresh", "retry", "expire", "minttl")
    return " ".join(str(soa.get(key, "")) for key in keys)


def _finding(record: dict[str, Any], record_type: str | None, values: list[str]) -> Finding:
    resolvers = record.get("resolver")
    return {
        "host": record.get("host"),
        "record_type": record_type,
        "values": values,
        "ttl": record.get("ttl"),
        "resolver": resolvers[0] if isinstance(resolvers, list) and resolvers else None,
        "status_code": record.get("status_code"),
    }


SPEC = ToolSpec(
    name="dnsx",
    image="projectdiscovery/dnsx:v1.2.3",
    entrypoint=["dnsx"],
    params_model=DnsxParams,
    build=build,
    parse=parse,
    default_timeout=900,
    description="DNS resolution of many names for A, AAAA, CNAME, NS, TXT, SRV, PTR, MX, SOA or CAA records.",
    finding_fields={
        "host": "the name that was resolved",
        "record_type": "a, aaaa, cname, ns, txt, srv, ptr, mx, soa or caa; null when no records came back",
        "values": "the record values as strings (SOA as 'ns mailbox serial refresh retry expire minttl')",
        "ttl": "the TTL of the first answer record, or null",
        "resolver": "the resolver that answered, as host:port, or null",
        "status_code": "the DNS response code, e.g. NOERROR, NXDOMAIN, SERVFAIL",
    },
)
