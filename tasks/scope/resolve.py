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
    """A resolver that asks one DNS server (see `endpoint`) for A and AAAA records."""
    nameserver, port = endpoint(address)

    def ask(name: str, timeout: float) -> list[Address]:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port, resolver.lifetime = [nameserver], port, timeout
        found: list[Address] = []
        for record_type in ("A", "AAAA"):
            try:
                answer = resolver.resolve(name, record_type, search=False)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
                continue
            found += [unwrapped(ipaddress.ip_address(record.to_text())) for record in answer]
        return found

    return lambda names, timeout: _concurrently(lambda name: ask(name, timeout), names, timeout)


def endpoint(text: str) -> tuple[str, int]:
    """(address, port) of a DNS server written `address`, `address:port`, `[v6]` or `[v6]:port` (port 53 unless
    given); ValueError for anything else, so a bad setting fails where it is read and not at each lookup."""
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest[:1] == ":" else (port if rest == "" else "")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        found = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r} is not a DNS server's address[:port] ([address]:port for IPv6)") from None
    if not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{text!r}: the port must be a number within 1-65535")
    return str(found), int(port)


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
