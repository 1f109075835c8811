"""nmap: a TCP connect scan (no raw sockets, no capabilities); its XML report gives one finding per port."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from functools import partial
from typing import Annotated, Any

from pydantic import AfterValidator, Field, model_validator

from tasks.tools.base import Finding, Invocation, ToolParams, ToolSpec, input_path, output_path
from tasks.tools.validation import PortList, host_or_network, lines, not_both

TARGETS_FILE = "targets.txt"
REPORT_FILE = "nmap.xml"
MAX_TARGETS = 1024
MAX_NETWORK_ADDRESSES = 65536
# nmap itself writes a bare `<!DOCTYPE nmaprun>`; anything else that declares a DTD or entities is refused.
_NMAP_DOCTYPE = re.compile(rb"<!DOCTYPE\s+nmaprun\s*>")

Target = Annotated[str, AfterValidator(partial(host_or_network, max_addresses=MAX_NETWORK_ADDRESSES))]


class NmapParams(ToolParams):
    """What to scan: targets, and either explicit ports or nmap's most common top_ports."""

    targets: tuple[Target, ...] = Field(min_length=1, max_length=MAX_TARGETS)
    ports: PortList | None = None
    top_ports: int | None = Field(default=None, ge=1, le=65535)
    service_detection: bool = False

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
    return Invocation(argv=argv, input_files={TARGETS_FILE: lines(params.targets)}, output_files=[REPORT_FILE])


def parse(outputs: Mapping[str, bytes]) -> list[Finding]:
    """One finding per port of every complete <host>; a report cut off mid-run keeps its complete hosts."""
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("end",))
    findings: list[Finding] = []
    try:
        parser.feed(_without_nmap_doctype(outputs.get(REPORT_FILE, b"")))
        findings += _complete_hosts(parser)
        parser.close()
    except ET.ParseError:
        pass  # truncated or damaged: the hosts completed before the damage are kept
    return findings + _complete_hosts(parser)


def _without_nmap_doctype(data: bytes) -> bytes:
    data = _NMAP_DOCTYPE.sub(b"", data, count=1)
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ValueError("refusing an nmap report that declares a DTD or entities")
    return data


def _complete_hosts(parser: ET.XMLPullParser[ET.Element]) -> list[Finding]:
    findings: list[Finding] = []
    for event in parser.read_events():
        element = event[-1]
        if isinstance(element, ET.Element) and element.tag == "host":
            findings += _port_findings(element)
            element.clear()
    return findings


def _port_findings(host: ET.Element) -> list[Finding]:
    addresses = {a.get("addrtype"): a.get("addr") for a in host.iterfind("address")}
    address = addresses.get("ipv4") or addresses.get("ipv6")
    hostname = next((n.get("name") for n in host.iterfind("hostnames/hostname") if n.get("name")), None)
    base: dict[str, Any] = {"host": hostname or address, "address": address, "hostname": hostname}
    return [{**base, **_port(port)} for port in host.iterfind("ports/port")]


def _port(port: ET.Element) -> dict[str, Any]:
    state = port.find("state")
    service = port.find("service")
    portid = port.get("portid", "")
    return {
        "port": int(portid) if portid.isascii() and portid.isdigit() else None,
        "protocol": port.get("protocol"),
        "state": _attribute(state, "state"),
        "reason": _attribute(state, "reason"),
        "service": _attribute(service, "name"),
        "product": _attribute(service, "product"),
        "version": _attribute(service, "version"),
        "extra_info": _attribute(service, "extrainfo"),
    }


def _attribute(element: ET.Element | None, name: str) -> str | None:
    """An attribute of a child element that nmap may leave out altogether."""
    return element.get(name) if element is not None else None


SPEC = ToolSpec(
    name="nmap",
    image="instrumentisto/nmap:7.95",
    entrypoint=["nmap"],
    params_model=NmapParams,
    build=build,
    parse=parse,
    default_timeout=1800,
    description="Port scan with nmap's TCP connect scan (-sT -Pn -n), optionally detecting services (-sV).",
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
