"""sslscan: the TLS protocols, ciphers, key exchange groups and certificate of servers; each is a finding.

Debian's sslscan 2.0.7 (built against OpenSSL 3 with security level 0, so SSLv3 to TLSv1.3 and weak ciphers are
all tried) writes --xml as one <ssltest> per target holding <protocol>, <renegotiation>, <compression>
(only when OpenSSL has it), <heartbleed>, <cipher>, <group> and <certificates>, and an <error> for a target it could not
reach. It is single-threaded and --sleep pauses before every connection it opens (tcpConnect), so a rate in
connections a second becomes --sleep=ceil(1000 / rate) milliseconds.
sslscan writes a certificate's subject, issuer and altnames into CDATA without escaping "]]>", so a scanned server
can forge elements through its own certificate: findings about that server are its word, as with any scanner.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any
from urllib.parse import urlsplit
from xml.parsers.expat import errors as expat_errors

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as DefusedET
from defusedxml.ElementTree import DefusedXMLParser
from pydantic import AfterValidator, Field

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
from tasks.tools.chunking import Chunking
from tasks.tools.validation import host_or_network, lines, printable

TARGETS_FILE = "targets.txt"
REPORT_FILE = "sslscan.xml"
MAX_TARGETS = 1024
# Written after every --targets run by 2.0.7, whatever the file held (seen on every run here): not a finding.
_TARGETS_FILE_QUIRK = "Targets file "
_CUT_OFF = frozenset(
    expat_errors.codes[message]
    for message in (expat_errors.XML_ERROR_NO_ELEMENTS, expat_errors.XML_ERROR_UNCLOSED_TOKEN,
                    expat_errors.XML_ERROR_PARTIAL_CHAR)
)  # fmt: skip
_Reader = Callable[[ET.Element], dict[str, Any]]
WEAK_PROTOCOLS = frozenset({"SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"})
WEAK_STRENGTHS = frozenset({"null", "anonymous", "weak", "medium"})
FIELDS = (
    "host", "port", "sni_name", "kind", "protocol", "name", "status", "bits", "strength", "issue",
    "issuer", "not_before", "not_after", "signature_algorithm", "self_signed", "expired",
)  # fmt: skip


def tls_target(value: str) -> str:
    """Accept host or host:port (sslscan defaults the port to 443); no IPv6, which --targets cannot read."""
    printable(value, "a target")
    parts = urlsplit(f"//{value}")
    # sslscan 2.0.7 cuts a --targets line at its first ':' (main(), the targets loop): [::1]:443 would be host "[".
    if value.startswith("[") or value.count(":") > 1:
        raise ValueError(f"target {value!r}: IPv6 addresses cannot be scanned (sslscan's --targets misreads them)")
    if parts.path or parts.query or parts.fragment or "@" in parts.netloc or not parts.hostname:
        raise ValueError(f"target {value!r} must be host or host:port")
    host_or_network(parts.hostname, max_addresses=1)
    if "/" in parts.hostname or parts.port == 0:  # .port raises ValueError when out of range
        raise ValueError(f"target {value!r} must be host or host:port, the port within 1-65535")
    return value


class SslscanParams(ToolParams):
    """Which TLS servers to scan, and how fast to open connections."""

    targets: tuple[Annotated[str, AfterValidator(tls_target)], ...] = Field(
        min_length=1, max_length=MAX_TARGETS, description="host or host:port (default port 443); no IPv6"
    )
    rate: float | None = Field(
        default=None,
        ge=0.001,
        le=1000,
        description="at most this many connections a second (decimals allowed): a pause before each (--sleep)",
    )


def build(params: SslscanParams) -> Invocation:
    """Targets through --targets, the XML report to /outputs; the console output is left to stdout."""
    argv = [f"--targets={input_path(TARGETS_FILE)}", f"--xml={output_path(REPORT_FILE)}", "--no-colour"]
    if params.rate is not None:
        argv.append(f"--sleep={math.ceil(1000 / params.rate)}")
    return Invocation(argv=argv, input_files={TARGETS_FILE: lines(params.targets)}, output_files=[REPORT_FILE])


def parse(outputs: Outputs) -> Iterator[Finding]:
    """One finding per protocol, cipher, group, check and certificate of each <ssltest>, and per <error>.

    The report is read incrementally and each element is dropped once its finding is out. A report cut off
    mid-run keeps what came before; any DTD, entity or XML broken before its end raises ParseError.
    """
    stream = outputs.get(REPORT_FILE)
    if stream is None:
        return
    parser = DefusedXMLParser(target=ET.TreeBuilder(), forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        yield from _findings(DefusedET.iterparse(stream, events=("start", "end"), parser=parser))
    except ET.ParseError as exc:
        if exc.code not in _CUT_OFF:
            raise ParseError(f"the sslscan report is not well-formed XML: {exc}") from None
    except DefusedXmlException as exc:
        raise ParseError(f"refusing the sslscan report: {exc}") from None


def _findings(events: Iterable[tuple[str, ET.Element]]) -> Iterator[Finding]:
    """Findings of each element as it ends, which is then dropped from its parent: the tree never grows."""
    path: list[str] = []
    parents: list[ET.Element] = []
    test: dict[str, Any] = {}
    for event, element in events:
        if event == "start":
            path.append(element.tag)
            parents.append(element)
            if path[-2:] == ["document", "ssltest"]:
                test = {
                    "host": element.get("host"),
                    "sni_name": element.get("sniname"),
                    "port": _int(element.get("port")),
                }
            continue
        path.pop()
        parents.pop()
        values = _values(path, element)
        if values is not None:
            yield {field: {**test, **values}.get(field) for field in FIELDS}
        if parents and len(path) <= 3:  # below a certificate, its parts wait for it
            parents[-1].remove(element)


def _values(path: list[str], element: ET.Element) -> dict[str, Any] | None:
    """What an element that just ended under `path` says, when it is a finding."""
    if path == ["document"] and element.tag == "error":
        message = (element.text or "").strip()
        if message.startswith(_TARGETS_FILE_QUIRK):
            return None
        return {"kind": "error", "host": None, "port": None, "sni_name": None, "name": message}  # outside any test
    if path == ["document", "ssltest"] and element.tag in _READERS:
        return _READERS[element.tag](element)
    if path == ["document", "ssltest", "certificates"] and element.tag == "certificate":
        return _certificate(element)
    return None


def _flag(element: ET.Element, name: str) -> bool:
    return element.get(name) == "1"


def _protocol(element: ET.Element) -> dict[str, Any]:
    kind, version = element.get("type", ""), element.get("version", "")
    protocol = f"{kind.upper()}v{version}"  # SSLv3, TLSv1.0: as the cipher elements' sslversion spells them
    enabled = _flag(element, "enabled")
    issue = f"{protocol} enabled" if enabled and protocol in WEAK_PROTOCOLS else None
    return {"kind": "protocol", "protocol": protocol, "status": "enabled" if enabled else "disabled", "issue": issue}


def _compression(element: ET.Element) -> dict[str, Any]:
    supported = _flag(element, "supported")
    return {"kind": "compression", "status": "supported" if supported else "not supported",
            "issue": "TLS compression (CRIME)" if supported else None}  # fmt: skip


def _renegotiation(element: ET.Element) -> dict[str, Any]:
    if not _flag(element, "supported"):
        return {"kind": "renegotiation", "status": "not supported"}
    secure = _flag(element, "secure")
    return {"kind": "renegotiation", "status": "secure" if secure else "insecure",
            "issue": None if secure else "insecure renegotiation"}  # fmt: skip


def _heartbleed(element: ET.Element) -> dict[str, Any]:
    vulnerable = _flag(element, "vulnerable")
    return {"kind": "heartbleed", "protocol": element.get("sslversion"),
            "status": "vulnerable" if vulnerable else "not vulnerable",
            "issue": "vulnerable to heartbleed (CVE-2014-0160)" if vulnerable else None}  # fmt: skip


def _cipher(element: ET.Element) -> dict[str, Any]:
    name, strength = element.get("cipher"), element.get("strength")
    return {"kind": "cipher", "protocol": element.get("sslversion"), "name": name, "status": element.get("status"),
            "bits": _int(element.get("bits")), "strength": strength,
            "issue": f"{strength} cipher {name}" if strength in WEAK_STRENGTHS else None}  # fmt: skip


def _group(element: ET.Element) -> dict[str, Any]:
    return {"kind": "group", "protocol": element.get("sslversion"), "name": element.get("name"),
            "bits": _int(element.get("bits"))}  # fmt: skip


def _certificate(element: ET.Element) -> dict[str, Any]:
    pk = element.find("pk")
    bits, key_type = _int(pk.get("bits")) if pk is not None else None, pk.get("type") if pk is not None else None
    expired, self_signed = _text(element, "expired") == "true", _text(element, "self-signed") == "true"
    signature = _text(element, "signature-algorithm")
    issues = [
        "certificate expired" if expired else None,
        "self-signed certificate" if self_signed else None,
        f"weak {key_type} key ({bits} bits)" if key_type == "RSA" and bits is not None and bits < 2048 else None,
        f"weak signature algorithm {signature}" if signature and ("sha1" in signature or "md5" in signature) else None,
    ]
    return {
        "kind": "certificate", "name": _text(element, "subject"), "status": "expired" if expired else "valid",
        "bits": bits, "issue": "; ".join(i for i in issues if i) or None, "issuer": _text(element, "issuer"),
        "not_before": _text(element, "not-valid-before"), "not_after": _text(element, "not-valid-after"),
        "signature_algorithm": signature, "self_signed": self_signed, "expired": expired,
    }  # fmt: skip


def _text(element: ET.Element, child: str) -> str | None:
    found = element.find(child)
    return found.text.strip() if found is not None and found.text is not None else None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


_READERS: dict[str, _Reader] = {
    "protocol": _protocol,
    "renegotiation": _renegotiation,
    "compression": _compression,
    "heartbleed": _heartbleed,
    "cipher": _cipher,
    "group": _group,
}


def targets(params: SslscanParams) -> Iterator[Target]:
    """The host of each target line (an address or a name), as sslscan connects to it."""
    for target in params.targets:
        host = urlsplit(f"//{target}").hostname or target
        yield TargetKind.HOST, host


SPEC = ToolSpec(
    name="sslscan",
    # Debian's sslscan in the local tools image (scripts/build-images tools); TOOLRUNNER_IMAGE_SSLSCAN overrides.
    image="toolrunner-tools:local",
    entrypoint=["sslscan"],
    params_model=SslscanParams,
    build=build,
    parse=parse,
    version=2,
    default_timeout=900,
    description="TLS configuration: protocols, ciphers, groups, renegotiation, heartbleed and the certificate.",
    targets=targets,
    finding_hosts=("host",),
    rate_param="rate",
    chunking=Chunking("targets", 100),
    rate_integer=False,
    finding_fields={
        "host": "the scanned host as given (null for an error)",
        "port": "the scanned port",
        "sni_name": "the SNI name sslscan sent",
        "kind": "protocol, renegotiation, compression, heartbleed, cipher, group, certificate or error",
        "protocol": "SSLv2 to TLSv1.3: the protocol of a protocol, cipher, group or heartbleed finding",
        "name": "the cipher or group name, the certificate's subject, or an error's message",
        "status": "enabled/disabled, preferred/accepted (a cipher), supported/not supported, secure/insecure,"
        " vulnerable/not vulnerable, expired/valid (a certificate)",
        "bits": "the cipher's, group's or certificate key's bits",
        "strength": "sslscan's rating of a cipher: null, anonymous, weak, medium, acceptable or strong",
        "issue": "what is wrong, or null: a weak protocol enabled, a weak cipher, insecure renegotiation,"
        " heartbleed, compression, an expired or self-signed certificate, an RSA key under 2048 bits, SHA-1 or MD5",
        "issuer": "the certificate's issuer",
        "not_before": "the certificate's start of validity, as sslscan writes it",
        "not_after": "the certificate's end of validity, as sslscan writes it",
        "signature_algorithm": "the certificate's signature algorithm",
        "self_signed": "whether the certificate is self-signed (certificate findings), else null",
        "expired": "whether the certificate has expired (certificate findings), else null",
    },
)
