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
import socket
from typing import NamedTuple

from tasks.errors import TargetError
from tasks.tools import TargetKind

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# A network as matching compares it: (IP version, first address, last address) as integers. Reading a target
# builds no ipaddress objects (each costs microseconds, and a check reads thousands): `network` builds one on demand.
Span = tuple[int, int, int]

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_NAME = re.compile(rf"(?=.{{1,253}}\Z)(?:{_LABEL}\.)*(?!-)[a-z][a-z0-9-]{{0,62}}(?<!-)")  # last label: a letter first
# The forms API tiers send most, read in one match by `plain_address` and `plain_name`: a dotted quad or a canonical
# name (lower case, no trailing dot, two labels or more, the last starting with a letter), alone or as the host of
# a web target or URL.
_PLAIN_NAME = rf"(?:{_LABEL}\.)+(?!-)[a-z][a-z0-9-]{{0,62}}(?<!-)"
_PLAIN_HOST = re.compile(_PLAIN_NAME)
_PLAIN_WEB = re.compile(rf"({_PLAIN_NAME})(?::([0-9]{{1,5}}))?")
_PLAIN_URL = re.compile(rf"https?://({_PLAIN_NAME})(?::([0-9]{{1,5}}))?(?=[/?#]|\Z)")
_QUAD_URL = re.compile(r"https?://([0-9]{1,3}(?:\.[0-9]{1,3}){3})(?::([0-9]{1,5}))?(?=[/?#]|\Z)")
_NUMERIC_LOOKING = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)")  # a last label inet_aton reads as a number
_AS_NUMBER = re.compile(r"as[0-9]+")  # naabu, httpx and nuclei expand AS14421 to every network of that AS
_DOTTED_QUAD = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_FORBIDDEN_IN_AUTHORITY = re.compile(r"[@\\%\s\x00-\x1f\x7f]")
_PORT = re.compile(r"[0-9]{1,5}")
_AUTHORITY_END = re.compile(r"[/?#]")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix
_NAT64_HIGH = int(_NAT64.network_address) >> 32
_RESOLVER_PREFIXES = ("udp:", "tcp:", "dot:", "doh:")
_BITS = {4: 32, 6: 128}


class Host(NamedTuple):
    """One place a target sends a tool: a network of addresses (one address is a /32 or /128), or a DNS name.

    A named tuple: a check reads thousands, and a frozen dataclass costs three times as much to build."""

    given: str
    span: Span | None = None
    name: str | None = None

    @property
    def network(self) -> Network | None:
        """The network the target names, or None for a name."""
        return None if self.span is None else as_network(self.span)

    def __str__(self) -> str:
        return self.name if self.name is not None else str(self.network)


def span(found: Network) -> Span:
    """The network as (version, first, last) integers."""
    first = int(found.network_address)
    return found.version, first, first | ((1 << (found.max_prefixlen - found.prefixlen)) - 1)


def hex_span(found: Span) -> tuple[int, str, str]:
    """(version, first, last) with the addresses as lowercase fixed-width hex (8 digits for IPv4, 32 for IPv6), so
    that comparing the strings orders the addresses: how the Lua scripts compare spans without 128-bit integers."""
    version, first, last = found
    width = _BITS[version] // 4
    return version, f"{first:0{width}x}", f"{last:0{width}x}"


def as_network(found: Span) -> Network:
    """The ipaddress network of a span (spans are always whole CIDR blocks)."""
    version, first, last = found
    prefix = _BITS[version] - (last - first).bit_length()
    return ipaddress.IPv4Network((first, prefix)) if version == 4 else ipaddress.IPv6Network((first, prefix))


def address(text: str) -> Address | None:
    """The address text writes in its one unambiguous form, or None when it is no address at all."""
    found = address_span(text)
    if found is None:
        return None
    return ipaddress.IPv4Address(found[1]) if found[0] == 4 else ipaddress.IPv6Address(found[1])


def dotted_quad(text: str) -> Span | None:
    """The one-address span of a canonical dotted quad (`192.0.2.7`), else None (read it with `read`)."""
    if not text[-1:].isdigit() or not _DOTTED_QUAD.fullmatch(text):  # names end in a letter: no match needed
        return None
    try:
        value = int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except OSError:
        return None  # leading zeros or an octet past 255: `read` says why
    return 4, value, value


def address_span(text: str) -> Span | None:
    """The one-address span an address text writes, or None when it is no address at all (as `address`)."""
    if ":" not in text:
        if "%" in text:
            raise TargetError(f"{text!r}: IPv6 zone ids are not accepted")
        if not _DOTTED_QUAD.fullmatch(text):
            return None
        try:  # inet_pton (glibc, musl, BSD): octets 0-255 without leading zeros, ipaddress's rules; ~8x faster
            value = int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
        except OSError:
            raise TargetError(f"{text!r} is not an IPv4 address (octets 0-255, no leading zeros)") from None
        return 4, value, value
    value = _ipv6(text)
    version, value = _unwrapped(value)
    return version, value, value


def _ipv6(text: str) -> int:
    """An IPv6 address text as an integer, read by inet_pton as ipaddress reads it (tests pin the forms), ~5x faster."""
    if "%" in text:
        raise TargetError(f"{text!r}: IPv6 zone ids are not accepted")
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except (OSError, ValueError):  # ValueError: a NUL or a character that is not ASCII
        raise TargetError(f"{text!r} is not an IPv6 address") from None


def _unwrapped(value: int) -> tuple[int, int]:
    """`unwrapped` on integers: (4, the IPv4 address) an IPv6 address carries, else (6, itself)."""
    if value >> 32 == 0xFFFF or value >> 32 == _NAT64_HIGH:  # mapped, or NAT64's well-known prefix
        return 4, value & 0xFFFFFFFF
    if value >> 112 == 0x2002:  # 6to4: the IPv4 address in the 32 bits after the prefix
        return 4, (value >> 80) & 0xFFFFFFFF
    if value >> 32 == 0 and value > 1:  # ::a.b.c.d (deprecated), not :: or ::1
        return 4, value
    return 6, value


def unwrapped(found: Address) -> Address:
    """An IPv6 address that carries an IPv4 one as that IPv4: mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64's
    well-known 64:ff9b::a.b.c.d and 6to4's 2002:AABB:CCDD:: (the IPv4 address they reach where they are routed)."""
    if isinstance(found, ipaddress.IPv6Address):
        version, value = _unwrapped(int(found))
        return ipaddress.IPv4Address(value) if version == 4 else found
    return found


def network(text: str) -> Network:
    """A CIDR network, normalised to its network address; an IPv4-mapped one as its IPv4 network."""
    return as_network(network_span(text))


def network_span(text: str) -> Span:
    """The span of a CIDR network text writes (as `network`)."""
    base, _, prefix = text.partition("/")
    if not _PORT.fullmatch(prefix) or len(prefix) > 3:
        raise TargetError(f"{text!r}: the prefix length after '/' must be a number")
    first = address_span(base)
    if first is None:
        raise TargetError(f"{text!r} is not a CIDR network such as 192.0.2.0/24 or 2001:db8::/48")
    version, value, _ = first
    bits = int(prefix)
    if version == 4 and ":" in base:
        written = _ipv6(base)
        if written >> 32 != 0xFFFF and written >> 32 != 0:
            version, value = 6, written  # a NAT64 or 6to4 network stays the IPv6 network it is (private unless allowed)
        else:
            bits -= 96  # a mapped or compatible network: its prefix counts 128 bits
    if not 0 <= bits <= _BITS[version]:
        raise TargetError(f"{text!r}: prefix length /{prefix} is out of range")
    host_bits = _BITS[version] - bits
    low = value >> host_bits << host_bits
    return version, low, low | ((1 << host_bits) - 1)


def name(text: str) -> str:
    """A DNS name in lower case without its trailing dot; numeric-looking names are refused, never guessed."""
    if not text.isascii():  # before lower(): it folds the Kelvin sign U+212A into an ASCII 'k'
        raise TargetError(f"{text!r} is not a host name (ASCII letters, digits, '-' and '_'; IDNs as punycode)")
    lowered = text.lower()
    folded = lowered[:-1] if lowered.endswith(".") else lowered
    if "." in folded and _NAME.fullmatch(folded):
        return folded  # the common case: _NAME's last label starts with a letter, so it is neither numeric nor an AS
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


def plain_address(kind: TargetKind, text: str) -> Span | None:
    """The span `read` finds in a host or web target that is a dotted quad, or a URL whose host is one
    (`192.0.2.7`, `https://192.0.2.7:8443/login`), without building a Host; None for every other form."""
    if kind is TargetKind.HOST or (kind is TargetKind.WEB and "://" not in text):
        return dotted_quad(text)
    if kind is not TargetKind.WEB and kind is not TargetKind.URL:
        return None
    found = _QUAD_URL.match(text)
    if found is None or not _port_ok(found.group(2)):
        return None
    return dotted_quad(found.group(1))


def plain_name(kind: TargetKind, text: str) -> str | None:
    """The name `read` finds in a target of the common plain forms (`api.example.com`, `api.example.com:8443`,
    `https://api.example.com/login`), in one match and without building a Host; None for every other form.

    With plain_address, half the cost of a check (bench.scope); a property test holds both to `read`."""
    if kind is TargetKind.HOST or kind is TargetKind.DOMAIN:
        return text if _PLAIN_HOST.fullmatch(text) and len(text) <= 253 else None
    if kind is TargetKind.WEB and "://" not in text:
        found = _PLAIN_WEB.fullmatch(text)
    elif kind is TargetKind.WEB or kind is TargetKind.URL:
        found = _PLAIN_URL.match(text)
    else:
        return None
    if found is None or not _port_ok(found.group(2)) or len(found.group(1)) > 253:
        return None
    return found.group(1)


def _port_ok(port: str | None) -> bool:
    return port is None or 1 <= int(port) <= 65535


def read(kind: TargetKind, text: str) -> Host:
    """The host a target of `kind` sends its tool to, read as that tool reads it."""
    if kind is TargetKind.HOST:
        return _host(text)
    if kind is TargetKind.DOMAIN:
        return Host(text, name=name(text))
    if kind is TargetKind.WEB:
        if "/" in text and "://" not in text:  # httpx and nuclei expand a line such as 192.0.2.0/24 to its addresses
            return Host(text, span=network_span(text))
        if "://" not in text and text.count(":") > 1 and not text.startswith("["):
            # Go's URL parser takes a last all-digit group for a port (2001:db8::1:80 -> host 2001:db8::1, port 80)
            raise TargetError(f"{text!r}: write an IPv6 target in brackets, [2001:db8::1] or [2001:db8::1]:80")
        bare = "://" not in text and not text.startswith("[") and text.count(":") != 1  # an address, no port
        found = address_span(text) if bare else None
        return Host(text, span=found) if found is not None else _authority(text, require_scheme=False)
    if kind is TargetKind.URL:
        return _authority(text, require_scheme=True)
    return _resolver(text)


def _host(text: str) -> Host:
    if "/" in text:
        return Host(text, span=network_span(text))
    found = address_span(text)
    return Host(text, span=found) if found is not None else Host(text, name=name(text))


def _authority(text: str, *, require_scheme: bool) -> Host:
    """The host of host[:port] or scheme://host[:port]/rest, its authority read character by character."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        if require_scheme:
            raise TargetError(f"{text!r} is not an absolute http(s) URL")
        scheme, rest = "http", text
    if scheme.lower() not in ("http", "https"):
        raise TargetError(f"{text!r}: only http and https URLs are read")
    authority = _AUTHORITY_END.split(rest, maxsplit=1)[0]
    if _FORBIDDEN_IN_AUTHORITY.search(authority):
        raise TargetError(f"{text!r}: user info, percent-encoding, backslashes and spaces are refused in the host")
    host, port = _split_port(authority, text)
    if port is not None and not (_PORT.fullmatch(port) and 1 <= int(port) <= 65535):
        raise TargetError(f"{text!r}: the port must be a number within 1-65535")
    found = address_span(host)
    return Host(text, span=found) if found is not None else Host(text, name=name(host))


def _split_port(authority: str, text: str) -> tuple[str, str | None]:
    if authority.startswith("["):
        inside, closed, after = authority[1:].partition("]")
        if not closed or (after and not after.startswith(":")):
            raise TargetError(f"{text!r}: a bracketed IPv6 host must look like [2001:db8::1]:443")
        if address_span(inside) is None:
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
    found = address_span(host)
    if found is None or (port is not None and not _PORT.fullmatch(port)):
        raise TargetError(f"resolver {text!r} must be an address with an optional :port")
    return Host(text, span=found)
