"""Targets read the way the tools read them, into addresses, networks and names: the one reading of hosts.

A target is read strictly: any form two readers could take differently is refused rather than guessed at. IPv4
only as a dotted quad (nmap's and glibc's inet_aton read `127.1`, `0x7f.1`, `2130706433` and `0177.0.0.1` as
127.0.0.1; Go's net.ParseIP reads none of them and would ask DNS), IPv6 without a zone id, IPv4-mapped and
IPv4-compatible IPv6 read as the IPv4 address they carry, names in lower case without the trailing dot and
ending in a label that starts with a letter (no top-level domain is numeric: `10.0.0.1-5` is nmap's range
syntax, not a name) and never an AS number (`AS14421`, which naabu, httpx and nuclei expand), a web target
without a scheme but with a '/' as the CIDR network httpx and nuclei expand it to, URLs without user info,
percent-encoding or backslashes in their authority. Pure.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from tasks.errors import TargetError
from tasks.tools import TargetKind

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_NAME = re.compile(rf"(?=.{{1,253}}\Z)(?:{_LABEL}\.)*(?!-)[a-z][a-z0-9-]{{0,62}}(?<!-)")  # last label: a letter first
_NUMERIC_LOOKING = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)")  # a last label inet_aton reads as a number
_AS_NUMBER = re.compile(r"as[0-9]+")  # naabu, httpx and nuclei expand AS14421 to every network of that AS
_DOTTED_QUAD = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_FORBIDDEN_IN_AUTHORITY = re.compile(r"[@\\%\s\x00-\x1f\x7f]")
_PORT = re.compile(r"[0-9]{1,5}")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix
_RESOLVER_PREFIXES = ("udp:", "tcp:", "dot:", "doh:")


@dataclass(frozen=True)
class Host:
    """One place a target sends a tool: a network of addresses (one address is a /32 or /128), or a DNS name."""

    given: str
    network: Network | None = None
    name: str | None = None

    def __str__(self) -> str:
        return self.name if self.name is not None else str(self.network)


def address(text: str) -> Address | None:
    """The address text writes in its one unambiguous form, or None when it is no address at all."""
    if "%" in text:
        raise TargetError(f"{text!r}: IPv6 zone ids are not accepted")
    if ":" not in text and not _DOTTED_QUAD.fullmatch(text):
        return None
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        if ":" in text:
            raise TargetError(f"{text!r} is not an IPv6 address") from None
        raise TargetError(f"{text!r} is not an IPv4 address (octets 0-255, no leading zeros)") from None
    return unwrapped(found)


def unwrapped(found: Address) -> Address:
    """An IPv6 address that carries an IPv4 one as that IPv4: mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64's
    well-known 64:ff9b::a.b.c.d and 6to4's 2002:AABB:CCDD:: (the IPv4 address they reach where they are routed)."""
    if isinstance(found, ipaddress.IPv6Address):
        if found.ipv4_mapped is not None:
            return found.ipv4_mapped
        if found.sixtofour is not None:
            return found.sixtofour
        if found in _NAT64:
            return ipaddress.IPv4Address(int(found) & 0xFFFFFFFF)
        if int(found) >> 32 == 0 and int(found) > 1:  # ::a.b.c.d (deprecated), not :: or ::1
            return ipaddress.IPv4Address(int(found))
    return found


def network(text: str) -> Network:
    """A CIDR network, normalised to its network address; an IPv4-mapped one as its IPv4 network."""
    base, _, prefix = text.partition("/")
    if not _PORT.fullmatch(prefix) or len(prefix) > 3:
        raise TargetError(f"{text!r}: the prefix length after '/' must be a number")
    first = address(base)
    if first is None:
        raise TargetError(f"{text!r} is not a CIDR network such as 192.0.2.0/24 or 2001:db8::/48")
    bits = int(prefix)
    if isinstance(first, ipaddress.IPv4Address) and ":" in base:
        written = ipaddress.IPv6Address(base)
        if written.ipv4_mapped is None and int(written) >> 32 != 0:
            first = written  # a NAT64 or 6to4 network stays the IPv6 network it is (private unless allowed)
        else:
            bits -= 96  # a mapped or compatible network: its prefix counts 128 bits
    try:
        return ipaddress.ip_network(f"{first}/{bits}", strict=False)
    except ValueError:
        raise TargetError(f"{text!r}: prefix length /{prefix} is out of range") from None


def name(text: str) -> str:
    """A DNS name in lower case without its trailing dot; numeric-looking names are refused, never guessed."""
    if not text.isascii():  # before lower(): it folds the Kelvin sign U+212A into an ASCII 'k'
        raise TargetError(f"{text!r} is not a host name (ASCII letters, digits, '-' and '_'; IDNs as punycode)")
    lowered = text.lower()
    folded = lowered[:-1] if lowered.endswith(".") else lowered
    last = folded.rpartition(".")[2]
    if _NUMERIC_LOOKING.fullmatch(last) or last[:1].isdigit() or "*" in folded:
        raise TargetError(
            f"{text!r} reads as an IPv4 address or range in a form tools read differently (integer, octal, hex, "
            "short or nmap's range syntax): write each address as a dotted quad, or a network as CIDR"
        )
    if _AS_NUMBER.fullmatch(folded):
        raise TargetError(f"{text!r} reads as an AS number, which naabu, httpx and nuclei expand: write its networks")
    if not _NAME.fullmatch(folded):
        raise TargetError(f"{text!r} is not a host name (ASCII letters, digits, '-' and '_'; IDNs as punycode)")
    return folded


def read(kind: TargetKind, text: str) -> Host:
    """The host a target of `kind` sends its tool to, read as that tool reads it."""
    if kind is TargetKind.HOST:
        return _host(text)
    if kind is TargetKind.DOMAIN:
        return Host(text, name=name(text))
    if kind is TargetKind.WEB:
        if "/" in text and "://" not in text:  # httpx and nuclei expand a line such as 192.0.2.0/24 to its addresses
            return Host(text, network=network(text))
        if "://" not in text and text.count(":") > 1 and not text.startswith("["):
            # Go's URL parser takes a last all-digit group for a port (2001:db8::1:80 -> host 2001:db8::1, port 80)
            raise TargetError(f"{text!r}: write an IPv6 target in brackets, [2001:db8::1] or [2001:db8::1]:80")
        bare = "://" not in text and not text.startswith("[") and text.count(":") != 1  # an address, no port
        found = _maybe_address(text) if bare else None
        return found if found is not None else _authority(text, require_scheme=False)
    if kind is TargetKind.URL:
        return _authority(text, require_scheme=True)
    return _resolver(text)


def _host(text: str) -> Host:
    if "/" in text:
        return Host(text, network=network(text))
    found = _maybe_address(text)
    return found if found is not None else Host(text, name=name(text))


def _maybe_address(text: str) -> Host | None:
    found = address(text)
    return None if found is None else Host(text, network=ipaddress.ip_network(found))


def _authority(text: str, *, require_scheme: bool) -> Host:
    """The host of host[:port] or scheme://host[:port]/rest, its authority read character by character."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        if require_scheme:
            raise TargetError(f"{text!r} is not an absolute http(s) URL")
        scheme, rest = "http", text
    if scheme.lower() not in ("http", "https"):
        raise TargetError(f"{text!r}: only http and https URLs are read")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if _FORBIDDEN_IN_AUTHORITY.search(authority):
        raise TargetError(f"{text!r}: user info, percent-encoding, backslashes and spaces are refused in the host")
    host, port = _split_port(authority, text)
    if port is not None and not (_PORT.fullmatch(port) and 1 <= int(port) <= 65535):
        raise TargetError(f"{text!r}: the port must be a number within 1-65535")
    found = _maybe_address(host)
    return Host(text, network=found.network) if found is not None else Host(text, name=name(host))


def _split_port(authority: str, text: str) -> tuple[str, str | None]:
    if authority.startswith("["):
        inside, closed, after = authority[1:].partition("]")
        if not closed or (after and not after.startswith(":")):
            raise TargetError(f"{text!r}: a bracketed IPv6 host must look like [2001:db8::1]:443")
        if address(inside) is None:
            raise TargetError(f"{text!r}: brackets hold an IPv6 address only")
        return inside, after[1:] if after else None
    if authority.count(":") > 1:
        raise TargetError(f"{text!r}: write an IPv6 host in brackets, [2001:db8::1]")
    host, colon, port = authority.partition(":")
    return host, port if colon else None


def _resolver(text: str) -> Host:
    """A DNS server as dnsx reads one: an optional protocol prefix, an address and an optional port."""
    bare = text
    for prefix in _RESOLVER_PREFIXES:
        if bare.lower().startswith(prefix):
            bare = bare[len(prefix) :]
            break
    host, port = _split_port(bare, text) if bare.startswith("[") or bare.count(":") == 1 else (bare, None)
    found = _maybe_address(host)
    if found is None or (port is not None and not _PORT.fullmatch(port)):
        raise TargetError(f"resolver {text!r} must be an address with an optional :port")
    return Host(text, network=found.network)
