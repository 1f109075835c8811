"""nmap: a TCP connect scan (no raw sockets, no capabilities); its XML report gives one finding per port.

max_rate becomes --max-rate, in probe packets a second for the whole scan (so for each host at most that). nmap
reads it with sscanf("%f") into a float and refuses a value that is not above 0 (nmap.cc), so decimals such as
0.5 (a probe every 2 s) are passed as they are.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Annotated, Any
from xml.parsers.expat import errors as expat_errors

from defusedxml import DefusedXmlException, DTDForbidden
from defusedxml import ElementTree as DefusedET
from defusedxml.ElementTree import DefusedXMLParser
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
from tasks.tools.chunking import Chunking, Unit
from tasks.tools.validation import PortList, host_or_network, lines, not_both

TARGETS_FILE = "targets.txt"
REPORT_FILE = "nmap.xml"
MAX_TARGETS = 1024
MAX_NETWORK_ADDRESSES = 65536
# The expat errors of a report that simply stops (nmap killed mid-run): what came before it stands.
_CUT_OFF = frozenset(
    expat_errors.codes[message]
    for message in (expat_errors.XML_ERROR_NO_ELEMENTS, expat_errors.XML_ERROR_UNCLOSED_TOKEN,
                    expat_errors.XML_ERROR_PARTIAL_CHAR)
)  # fmt: skip
_PORT_FIELDS = ("port", "protocol", "state", "reason", "service", "product", "version", "extra_info")
_Port = tuple[int, str | None, str | None, str | None, str | None, str | None, str | None, str | None]

HostOrNetwork = Annotated[str, AfterValidator(partial(host_or_network, max_addresses=MAX_NETWORK_ADDRESSES))]


class NmapParams(ToolParams):
    """What to scan: targets, and either explicit ports or nmap's most common top_ports."""

    targets: tuple[HostOrNetwork, ...] = Field(min_length=1, max_length=MAX_TARGETS)
    ports: PortList | None = None
    top_ports: int | None = Field(default=None, ge=1, le=65535)
    service_detection: bool = False
    max_rate: float | None = Field(
        default=None,
        ge=0.001,
        le=100_000,
        description="at most this many probe packets a second for the whole scan (--max-rate; decimals allowed)",
    )

    @model_validator(mode="after")
    def _one_port_selection(self) -> NmapParams:
        not_both(ports=self.ports is not None, top_ports=self.top_ports is not None)
        return self


def build(params: NmapParams) -> Invocation:
    """Scan with -sT -Pn -n so the scan needs no privileges; targets arrive through -iL."""
    argv = ["-sT", "-Pn", "-n", "-oX", output_path(REPORT_FILE), "-iL", input_path(TARGETS_FILE)]
    if params.ports is not None:
        argv += ["-p", params.ports]
    if params.top_ports is not None:
        argv += ["--top-ports", str(params.top_ports)]
    if params.service_detection:
        argv.append("-sV")
    if params.max_rate is not None:
        argv += ["--max-rate", str(params.max_rate)]
    return Invocation(argv=argv, input_files={TARGETS_FILE: lines(params.targets)}, output_files=[REPORT_FILE])


def parse(outputs: Outputs) -> Iterator[Finding]:
    """One finding per port of every complete <host>; a report cut off mid-run keeps its complete hosts.

    The report is read incrementally and each host's elements are dropped once its findings are out, so
    memory grows with the ports of one host (a tuple of about 150 bytes a port), never with the report.
    A port without a numeric portid is no finding. A DTD other than nmap's bare one, any entity
    declaration, or XML broken before its end raises ParseError.
    """
    stream = outputs.get(REPORT_FILE)
    if stream is None:
        return
    parser = _NmapReportParser(target=ET.TreeBuilder())
    try:
        yield from _host_findings(DefusedET.iterparse(stream, events=("start", "end"), parser=parser))
    except ET.ParseError as exc:
        if exc.code not in _CUT_OFF:
            raise ParseError(f"the nmap report is not well-formed XML: {exc}") from None
    except DefusedXmlException as exc:
        raise ParseError(f"refusing the nmap report: {exc}") from None


class _NmapReportParser(DefusedXMLParser):
    """defusedxml's parser (no entities, no external references) that allows only nmap's bare DOCTYPE."""

    def __init__(self, target: ET.TreeBuilder) -> None:
        super().__init__(target=target, forbid_dtd=False, forbid_entities=True, forbid_external=True)
        self.parser.StartDoctypeDeclHandler = self._start_doctype

    def _start_doctype(self, name: str, sysid: str | None, pubid: str | None, has_internal_subset: bool) -> None:
        if name != "nmaprun" or sysid or pubid or has_internal_subset:
            raise DTDForbidden(name, sysid, pubid)


def _host_findings(events: Iterable[tuple[str, ET.Element]]) -> Iterator[Finding]:
    """Findings of each host as its element ends; its ports wait in a small buffer until then."""
    path: list[str] = []
    root: ET.Element | None = None
    ports: list[_Port] = []
    for event, element in events:
        if event == "start":
            root = element if root is None else root
            path.append(element.tag)
            ports = [] if element.tag == "host" else ports
            continue
        path.pop()
        if element.tag == "port" and path[-2:] == ["host", "ports"]:
            ports += _port(element)
            element.clear()
        elif element.tag == "host" and root is not None:
            yield from (_finding(element, port) for port in ports)
            ports = []
            root.clear()  # drop finished hosts and scan info: the tree never grows with the report


def _port(port: ET.Element) -> list[_Port]:
    """The port as a compact tuple, or nothing when it has no numeric portid."""
    portid = port.get("portid", "")
    if not (portid.isascii() and portid.isdigit()):
        return []
    state = port.find("state")
    service = port.find("service")
    return [
        (
            int(portid),
            _attribute(port, "protocol"),
            _attribute(state, "state"),
            _attribute(state, "reason"),
            _attribute(service, "name"),
            _attribute(service, "product"),
            _attribute(service, "version"),
            _attribute(service, "extrainfo"),
        )
    ]


def _finding(host: ET.Element, port: _Port) -> Finding:
    addresses = {a.get("addrtype"): a.get("addr") for a in host.iterfind("address")}
    address = addresses.get("ipv4") or addresses.get("ipv6")
    hostname = next((n.get("name") for n in host.iterfind("hostnames/hostname") if n.get("name")), None)
    base: dict[str, Any] = {"host": hostname or address, "address": address, "hostname": hostname}
    return {**base, **dict(zip(_PORT_FIELDS, port, strict=True))}


def _attribute(element: ET.Element | None, name: str) -> str | None:
    """An attribute of an element that nmap may leave out altogether, interned since most repeat."""
    value = element.get(name) if element is not None else None
    return sys.intern(value) if value is not None else None


def targets(params: NmapParams) -> Iterator[Target]:
    """Each target line of -iL: an address, a CIDR network or a name, as nmap reads it."""
    return ((TargetKind.HOST, target) for target in params.targets)


SPEC = ToolSpec(
    name="nmap",
    image="instrumentisto/nmap:7.95",
    entrypoint=["nmap"],
    params_model=NmapParams,
    build=build,
    parse=parse,
    version=5,
    default_timeout=1800,
    description="Port scan with nmap's TCP connect scan (-sT -Pn -n), optionally detecting services (-sV).",
    targets=targets,
    finding_hosts=("address", "hostname"),
    rate_param="max_rate",
    chunking=Chunking("targets", MAX_TARGETS, Unit.ADDRESSES),
    rate_integer=False,
    finding_fields={
        "host": "the hostname if nmap reported one, else the address",
        "address": "the scanned IPv4 or IPv6 address",
        "hostname": "the hostname of the target as given, or null",
        "port": "the port number",
        "protocol": "tcp",
        "state": "open, closed, filtered, unfiltered, open|filtered or closed|filtered",
        "reason": "why nmap decided the state, e.g. syn-ack, conn-refused, no-response",
        "service": "the service name nmap guessed or detected (-sV), or null",
        "product": "the product found by service detection, or null",
        "version": "the product version found by service detection, or null",
        "extra_info": "further detail from service detection (e.g. the runtime), or null",
    },
)
