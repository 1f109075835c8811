"""naabu: a fast TCP connect port scan (no raw sockets, runs as non-root); each open port is a finding."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

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
from tasks.tools.validation import PortList, host_or_network, lines, not_both, port_number

HOSTS_FILE = "hosts.txt"
REPORT_FILE = "naabu.jsonl"
MAX_HOSTS = 10_000
MAX_NETWORK_ADDRESSES = 65536

Host = Annotated[str, AfterValidator(partial(host_or_network, max_addresses=MAX_NETWORK_ADDRESSES))]


class NaabuParams(ToolParams):
    """What to scan: hosts, and either explicit ports or one of naabu's top-ports lists."""

    hosts: tuple[Host, ...] = Field(min_length=1, max_length=MAX_HOSTS)
    ports: PortList | None = None
    top_ports: Literal["100", "1000", "full"] | None = None
    rate: int | None = Field(
        default=None, ge=1, le=10_000, description="at most this many probe packets a second for the whole scan (-rate)"
    )

    @model_validator(mode="after")
    def _one_port_selection(self) -> NaabuParams:
        not_both(ports=self.ports is not None, top_ports=self.top_ports is not None)
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
    return Invocation(argv=argv, input_files={HOSTS_FILE: lines(params.hosts)}, output_files=[REPORT_FILE])


def parse(outputs: Outputs) -> Iterator[Finding]:
    """One finding per JSON line with a port; a line without one (e.g. `{}`) is no finding.

    naabu writes its -o file only when the whole scan has finished (runner.handleOutput), so a run
    that times out or is killed leaves no report and gives no findings.
    """
    for record in jsonl_records(outputs.get(REPORT_FILE)):
        if record.get("port") is not None:
            yield _finding(record)


def _finding(record: dict[str, Any]) -> Finding:
    ip = record.get("ip")
    return {
        "host": record.get("host") or ip,  # naabu omits host when it equals the IP
        "ip": ip,
        "port": port_number(record.get("port")),
        "protocol": record.get("protocol") or "tcp",
        "tls": bool(record.get("tls", False)),
    }


def targets(params: NaabuParams) -> Iterator[Target]:
    """Each host line of -list: an address, a CIDR network or a name."""
    return ((TargetKind.HOST, host) for host in params.hosts)


SPEC = ToolSpec(
    name="naabu",
    image="projectdiscovery/naabu:v2.6.1",
    entrypoint=["naabu"],
    params_model=NaabuParams,
    build=build,
    parse=parse,
    version=5,
    # naabu v2.6.1 pkg/scan/scan.go reads it with strconv.ParseBool; without it connect scans never detect TLS.
    environment={"ENABLE_TLS_DETECTION": "true"},
    default_timeout=1800,
    description=(
        "Fast port discovery with naabu's TCP connect scan (-s c); reports open ports only, and only once the"
        " scan has finished (a timed-out run reports none)."
    ),
    targets=targets,
    finding_hosts=("ip", "host"),
    rate_param="rate",
    chunking=Chunking("hosts", 1024, Unit.ADDRESSES),
    finding_fields={
        "host": "the hostname scanned, or the IP when the target was an address",
        "ip": "the IP address the open port is on",
        "port": "the open port number",
        "protocol": "tcp",
        "tls": "whether naabu detected TLS on the port (ENABLE_TLS_DETECTION is set for it)",
    },
)
