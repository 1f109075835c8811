"""naabu: a fast TCP connect port scan (no raw sockets, runs as non-root); each open port is a finding."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from tasks.tools.base import Finding, Invocation, ToolParams, ToolSpec, input_path, output_path, parse_jsonl

HOSTS_FILE = "hosts.txt"
REPORT_FILE = "naabu.jsonl"
MAX_HOSTS = 10_000
MAX_NETWORK_ADDRESSES = 65536
_HOSTNAME = re.compile(r"(?=.{1,253}\Z)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")
_PORTS = re.compile(r"\d{1,5}(?:-\d{1,5})?(?:,\d{1,5}(?:-\d{1,5})?){0,99}")


def _host(value: str) -> str:
    """Accept a hostname, an IP address or a CIDR network of at most MAX_NETWORK_ADDRESSES addresses."""
    if "/" in value:
        if ipaddress.ip_network(value, strict=False).num_addresses > MAX_NETWORK_ADDRESSES:
            raise ValueError(f"network {value!r} has more than {MAX_NETWORK_ADDRESSES} addresses")
        return value
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a hostname, an IP address or a CIDR network") from None
    return value


def _ports(value: str) -> str:
    """Accept a port list such as 22,80,8000-8100 with every port in 1-65535, ranges ascending."""
    if not _PORTS.fullmatch(value):
        raise ValueError(f"ports {value!r} must look like 22,80,8000-8100 (at most 100 items)")
    for item in value.split(","):
        low, _, high = item.partition("-")
        if not 1 <= int(low) <= int(high or low) <= 65535:
            raise ValueError(f"port item {item!r} must be within 1-65535, low end first")
    return value


class NaabuParams(ToolParams):
    """What to scan: hosts, and either explicit ports or one of naabu's top-ports lists."""

    hosts: tuple[Annotated[str, AfterValidator(_host)], ...] = Field(min_length=1, max_length=MAX_HOSTS)
    ports: Annotated[str, AfterValidator(_ports)] | None = None
    top_ports: Literal["100", "1000", "full"] | None = None
    rate: int | None = Field(default=None, ge=1, le=10_000)

    @model_validator(mode="after")
    def _one_port_selection(self) -> NaabuParams:
        if self.ports is not None and self.top_ports is not None:
            raise ValueError("give ports or top_ports, not both")
        return self


def build(params: NaabuParams) -> Invocation:
    """Hosts go in through -list; -s c picks the connect scan so no NET_RAW capability is needed."""
    argv = ["-list", input_path(HOSTS_FILE), "-json", "-o", output_path(REPORT_FILE), "-silent", "-duc"]
    argv += ["-s", "c"]
    if params.ports is not None:
        argv += ["-p", params.ports]
    if params.top_ports is not None:
        argv += ["-tp", params.top_ports]
    if params.rate is not None:
        argv += ["-rate", str(params.rate)]
    return Invocation(
        argv=argv,
        input_files={HOSTS_FILE: "\n".join(params.hosts) + "\n"},
        output_files=[REPORT_FILE],
    )


def parse(outputs: Mapping[str, bytes]) -> list[Finding]:
    """One finding per JSON line with a port."""
    return [_finding(r) for r in parse_jsonl(outputs.get(REPORT_FILE, b"")) if r.get("port") is not None]


def _finding(record: dict[str, Any]) -> Finding:
    ip = record.get("ip")
    port = record.get("port")
    return {
        "host": record.get("host") or ip,  # naabu omits host when it equals the IP
        "ip": ip,
        "port": int(port) if isinstance(port, str) and port.isdigit() else port,
        "protocol": record.get("protocol") or "tcp",
        "tls": bool(record.get("tls", False)),
    }


SPEC = ToolSpec(
    name="naabu",
    image="projectdiscovery/naabu:v2.6.1",
    entrypoint=["naabu"],
    params_model=NaabuParams,
    build=build,
    parse=parse,
    default_timeout=1800,
    description="Fast port discovery with naabu's TCP connect scan (-s c); reports open ports only.",
    finding_fields={
        "host": "the hostname scanned, or the IP when the target was an address",
        "ip": "the IP address the open port is on",
        "port": "the open port number",
        "protocol": "tcp",
        "tls": "whether naabu saw TLS on the port",
    },
)
