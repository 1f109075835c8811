"""Resolving a run's host names at admission, in bounded time: the system's resolver or one DNS server."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

import dns.exception
import dns.resolver

from tasks.scope.host import Address, unwrapped

# What a resolver answers per name: its addresses ([] for a name that does not exist), or None if it timed out.
Resolved = Mapping[str, list[Address] | None]
Resolver = Callable[[Sequence[str], float], Resolved]
_MAX_THREADS = 16


def system(names: Sequence[str], timeout: float) -> Resolved:
    """Resolve through getaddrinfo (the resolver the worker's own lookups use), all names at once."""
    return _concurrently(_getaddrinfo, names, timeout)


def server(address: str) -> Resolver:
    """A resolver that asks one DNS server (address, address:port or [IPv6]:port) for A and AAAA records.

    Raises ValueError for anything else, so a bad TOOLRUNNER_SCOPE_RESOLVER fails at start, not at each admission.
    """
    nameserver, port = nameserver_address(address)

    def ask(name: str, timeout: float) -> list[Address]:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port, resolver.lifetime = [nameserver], port, timeout
        found: list[Address] = []
        for record_type in ("A", "AAAA"):
            try:
                answer = resolver.resolve(name, record_type, search=False)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):  # no such name or record: nothing to deny
                continue  # a server failure (NoNameservers) raises: unresolved, so the run is refused
            found += [unwrapped(ipaddress.ip_address(record.to_text())) for record in answer]
        return found

    return lambda names, timeout: _concurrently(lambda name: ask(name, timeout), names, timeout)


def nameserver_address(text: str) -> tuple[str, int]:
    """The address and port (53 unless given) of 192.0.2.53, 192.0.2.53:5353, 2001:db8::53 or [2001:db8::53]:53.

    Raises ValueError for anything else.
    """
    host, port = text, "53"
    if text.startswith("["):
        host, closed, after = text[1:].partition("]")
        if not closed or (after and not after.startswith(":")):
            raise ValueError(f"{text!r}: a bracketed IPv6 server must look like [2001:db8::53]:53")
        port = after[1:] if after else port
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"{text!r}: the port must be a number within 1-65535")
    try:
        return str(ipaddress.ip_address(host)), int(port)
    except ValueError:
        raise ValueError(f"{text!r} is not a DNS server address such as 192.0.2.53 or [2001:db8::53]:53") from None


def _getaddrinfo(name: str) -> list[Address]:
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return [unwrapped(ipaddress.ip_address(str(info[4][0]).partition("%")[0])) for info in infos]


def _concurrently(lookup: Callable[[str], list[Address]], names: Sequence[str], timeout: float) -> Resolved:
    """Every name looked up on a few threads; a name not answered within `timeout` seconds maps to None."""
    if not names:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(_MAX_THREADS, len(names)), thread_name_prefix="scope-resolve")
    try:
        futures = {name: pool.submit(lookup, name) for name in names}
        wait(futures.values(), timeout=timeout)
        return {name: _answer(future) for name, future in futures.items()}
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a lookup past the deadline finishes on its own


def _answer(future: Future[list[Address]]) -> list[Address] | None:
    if not future.done():
        return None
    try:
        return list(future.result())
    except dns.exception.DNSException:  # a timeout or a server that would not answer
        return None
