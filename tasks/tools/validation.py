"""Checks shared by the tool modules: params that become argv items or input-file lines, and fields read back."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

# A label may not start or end with '-', so no name can read like a flag.
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_DNS_LABEL = r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)"  # DNS labels may also hold '_' (e.g. _dmarc)
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\.?")
_DNS_NAME = re.compile(rf"(?=.{{1,253}}\Z){_DNS_LABEL}(?:\.{_DNS_LABEL})*\.?")
_DOMAIN_NAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})+\.?")  # at least two labels
_PORT_LIST = re.compile(r"[0-9]{1,5}(?:-[0-9]{1,5})?(?:,[0-9]{1,5}(?:-[0-9]{1,5})?){0,99}")  # ASCII digits only
_PRINTABLE = re.compile(r"[\x21-\x7e]{1,2048}")  # no spaces or control characters: one line, one argv item
# A host or network: printable ASCII without '%', since Python's ipaddress takes anything after '%' as an IPv6 scope id.
_HOST_CHARACTERS = re.compile(r"[\x21-\x24\x26-\x7e]{1,253}")
# Every character str.splitlines() (and so a careless reader of the file) treats as the end of a line.
_LINE_BREAK = re.compile(r"[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")


def is_ip(value: str) -> bool:
    """Whether value is one IPv4 or IPv6 address (not a network, and without an IPv6 %scope id)."""
    if "%" in value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def printable(value: str, what: str) -> str:
    """Accept 1-2048 printable ASCII characters without spaces; what names the value in the message."""
    if not _PRINTABLE.fullmatch(value):
        raise ValueError(f"{what} must be printable ASCII without spaces, at most 2048 characters")
    return value


def dns_name(value: str) -> str:
    """Accept a DNS name whose labels may hold '_'; a single label such as localhost is allowed."""
    if not _DNS_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a DNS name")
    return value


def domain_name(value: str) -> str:
    """Accept a domain name of at least two labels of letters, digits and '-'."""
    if not _DOMAIN_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a domain name such as example.com")
    return value


def host_or_network(value: str, *, max_addresses: int) -> str:
    """Accept a hostname, an IP address or a CIDR network of at most max_addresses addresses."""
    if not _HOST_CHARACTERS.fullmatch(value):
        raise ValueError(f"{value!r} is not a hostname, an IP address or a CIDR network")
    if "/" in value:
        network = ipaddress.ip_network(value, strict=False)  # raises ValueError, which pydantic reports
        if network.num_addresses > max_addresses:
            raise ValueError(f"network {value!r} has more than {max_addresses} addresses")
        return value
    if not (is_ip(value) or _HOSTNAME.fullmatch(value)):
        raise ValueError(f"{value!r} is not a hostname, an IP address or a CIDR network")
    return value


def port_list(value: str) -> str:
    """Accept numeric port lists (22,80,8000-8100) of at most 100 items, every port in 1-65535, ranges ascending."""
    if not _PORT_LIST.fullmatch(value):
        raise ValueError(f"ports {value!r} must look like 22,80,8000-8100 (at most 100 items)")
    for item in value.split(","):
        low, _, high = item.partition("-")
        if not 1 <= int(low) <= int(high or low) <= 65535:
            raise ValueError(f"port item {item!r} must be within 1-65535, low end first")
    return value


def web_target(value: str) -> str:
    """Accept a host or IP with an optional :port, or an absolute http(s) URL without credentials."""
    printable(value, "a target")
    if is_ip(value):
        return value
    is_url = "://" in value
    parts = urlsplit(value if is_url else f"http://{value}")
    if parts.scheme not in ("http", "https") or "@" in parts.netloc:
        raise ValueError(f"target {value!r} must be host[:port] or an http(s) URL without credentials")
    if not is_url and (parts.path or parts.query or parts.fragment):
        raise ValueError(f"target {value!r} with a path must be written as a full http(s) URL")
    host, port = parts.hostname or "", parts.port  # .port raises ValueError when out of range
    if not (is_ip(host) or _DNS_NAME.fullmatch(host)) or port == 0:
        raise ValueError(f"target {value!r} has no valid host or port")
    return value


def web_url(value: str) -> str:
    """Accept an absolute http(s) URL with a host."""
    printable(value, "url")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"url {value!r} must be http:// or https:// with a host")
    return value


def not_both(**given: bool) -> None:
    """Refuse two mutually exclusive options (exactly two keywords) given together, naming both in the message."""
    (first, first_given), (second, second_given) = given.items()
    if first_given and second_given:
        raise ValueError(f"give {first} or {second}, not both")


DnsName = Annotated[str, AfterValidator(dns_name)]
DomainName = Annotated[str, AfterValidator(domain_name)]
PortList = Annotated[str, AfterValidator(port_list)]
WebTarget = Annotated[str, AfterValidator(web_target)]
WebUrl = Annotated[str, AfterValidator(web_url)]
StatusCode = Annotated[int, Field(ge=100, le=599)]


def lines(values: Iterable[str]) -> str:
    """An input file of one value a line; a value holding any line break is refused, whatever let it by."""
    values = list(values)
    for value in values:
        if _LINE_BREAK.search(value):
            raise ValueError(f"refusing to write {value[:80]!r} into a lines file: it holds a line break")
    return "\n".join(values) + "\n"


def str_items(value: Any) -> list[str]:
    """The items of a JSON list as strings; anything that is not a list gives []."""
    return [str(item) for item in value] if isinstance(value, list) else []


def one_or_many(value: Any) -> list[str]:
    """A value that may be one string or a list of them (nuclei's StringSlice) as a list of strings."""
    return [value] if isinstance(value, str) else str_items(value)


def port_number(value: Any) -> Any:
    """A port the tool wrote as a digit string becomes an int; any other value is kept as it came."""
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else value
