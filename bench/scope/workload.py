"""The benchmark's scopes and targets: N entries and N targets of every kind, as an API tier would send them.

Entries mix IPv4 addresses and networks, IPv6 addresses and networks, domains with their subdomains, names
alone and a few IDNs, some written the way people write them (upper case, a trailing dot, host bits set in a
network); about one in fifty is an exclusion inside an entry. Targets are the tools' forms (nmap's and naabu's
hosts and networks, httpx's and nuclei's host:port and URLs): most in scope, some outside, some excluded.
Every address is public (the deny list and private ranges refuse none) and every draw is seeded.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from dataclasses import dataclass

from tasks.tools import Target, TargetKind

SEED = 24
TLDS = ("com", "net", "org", "io", "de", "co.uk", "com.au", "fr")
# First octets outside every private, reserved and denied range (config/egress.py BLOCKED, METADATA).
PUBLIC_FIRST_OCTETS = tuple(o for o in range(1, 224) if o not in (0, 10, 100, 127, 168, 169, 172, 192, 198))
WORDS = ("acme", "shop", "mail", "vpn", "portal", "api", "cdn", "intra", "login", "status", "blog", "docs")


@dataclass(frozen=True)
class Workload:
    """A tenant's scope as written (entries and exclusions) and the targets of one run."""

    entries: list[str]
    exclusions: list[str]
    targets: list[Target]


@dataclass
class _Drawn:
    """What the entries hold, for drawing targets inside (and exclusions inside) them."""

    v4: list[ipaddress.IPv4Address]
    v4_nets: list[ipaddress.IPv4Network]
    v6: list[ipaddress.IPv6Address]
    v6_nets: list[ipaddress.IPv6Network]
    domains: list[str]
    exact: list[str]


def workload(n: int, seed: int = SEED) -> Workload:
    """N entries (with about N/50 exclusions among them) and N targets."""
    rng = random.Random(seed * 1_000_003 + n)
    drawn = _Drawn([], [], [], [], [], [])
    entries = [_entry(rng, drawn, i) for i in range(n - n // 50)]
    exclusions = [_exclusion(rng, drawn) for _ in range(n // 50)]
    targets = [_target(rng, drawn, exclusions) for _ in range(n)]
    return Workload(entries, exclusions, targets)


def _public_v4(rng: random.Random) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address((rng.choice(PUBLIC_FIRST_OCTETS) << 24) | rng.getrandbits(24))


def _public_v6(rng: random.Random) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address((0x2A00 << 112) | rng.getrandbits(108))


def _entry(rng: random.Random, drawn: _Drawn, i: int) -> str:
    roll = rng.random()
    return _network_entry(rng, drawn, roll) if roll < 0.60 else _name_entry(rng, drawn, roll, i)


def _network_entry(rng: random.Random, drawn: _Drawn, roll: float) -> str:
    """30% IPv4 addresses, 20% IPv4 networks (a few with host bits set), 10% IPv6 addresses and networks."""
    if roll < 0.30:
        drawn.v4.append(_public_v4(rng))
        return str(drawn.v4[-1])
    if roll < 0.50:
        drawn.v4_nets.append(ipaddress.IPv4Network(f"{_public_v4(rng)}/{rng.randint(20, 28)}", strict=False))
        net = drawn.v4_nets[-1]
        return f"{net.network_address + 1}/{net.prefixlen}" if rng.random() < 0.2 else str(net)
    if roll < 0.55:
        drawn.v6.append(_public_v6(rng))
        return drawn.v6[-1].exploded if rng.random() < 0.3 else str(drawn.v6[-1])
    drawn.v6_nets.append(ipaddress.IPv6Network(f"{_public_v6(rng)}/{rng.randint(48, 64)}", strict=False))
    return str(drawn.v6_nets[-1])


def _name_entry(rng: random.Random, drawn: _Drawn, roll: float, i: int) -> str:
    """28% domains (a few upper case or with the trailing dot), 10% names alone, 2% IDNs."""
    label = f"{rng.choice(WORDS)}{i}"
    if roll < 0.88:
        drawn.domains.append(f"{label}.{rng.choice(TLDS)}")
        written = drawn.domains[-1]
        return written.upper() if rng.random() < 0.1 else written + ("." if rng.random() < 0.1 else "")
    if roll < 0.98:
        drawn.exact.append(f"www.{label}.{rng.choice(TLDS)}")
        return "=" + drawn.exact[-1]
    idn = f"bücher{i}.de"
    drawn.domains.append(idn.encode("idna").decode("ascii"))
    return idn


def _exclusion(rng: random.Random, drawn: _Drawn) -> str:
    """An address inside a network entry, or a subdomain of a domain entry (a production database)."""
    if drawn.v4_nets and rng.random() < 0.5:
        net = rng.choice(drawn.v4_nets)
        return str(net.network_address + rng.randrange(net.num_addresses))
    return f"db.{rng.choice(drawn.domains)}"


def _target(rng: random.Random, drawn: _Drawn, exclusions: list[str]) -> Target:
    roll = rng.random()
    if roll < 0.05:  # outside: an address or a name no entry holds (each refused)
        outside = str(_public_v4(rng)) if rng.random() < 0.5 else f"elsewhere{rng.getrandbits(32)}.com"
        return TargetKind.HOST, outside
    if roll < 0.07:  # excluded
        return TargetKind.HOST, rng.choice(exclusions)
    host = _host(rng, drawn)
    if roll < 0.80:
        return TargetKind.HOST, host
    web = f"[{host}]" if ":" in host else host
    return TargetKind.WEB, f"{rng.choice(('http', 'https'))}://{web}:{rng.choice((80, 443, 8443))}/login?next=/"


def _host(rng: random.Random, drawn: _Drawn) -> str:
    """An address, network or name inside the scope (drawn from a non-empty kind of entry)."""
    makers: list[tuple[list[object], Callable[[], str]]] = [
        (list(drawn.v4), lambda: str(rng.choice(drawn.v4))),
        (list(drawn.v4_nets), lambda: _inside_v4(rng, rng.choice(drawn.v4_nets))),
        (list(drawn.v6), lambda: str(rng.choice(drawn.v6))),
        (list(drawn.v6_nets), lambda: str(rng.choice(drawn.v6_nets).network_address + rng.getrandbits(16))),
        (list(drawn.domains), lambda: _subdomain(rng, rng.choice(drawn.domains))),
        (list(drawn.exact), lambda: rng.choice(drawn.exact)),
    ]
    weights = (25, 30, 5, 5, 30, 5)
    while True:
        kind, make = rng.choices(makers, weights)[0]
        if kind:
            return make()


def _inside_v4(rng: random.Random, net: ipaddress.IPv4Network) -> str:
    """An address of the network, or (as nmap takes them) a smaller network inside it."""
    if rng.random() < 0.7:
        return str(net.network_address + rng.randrange(net.num_addresses))
    sub = ipaddress.IPv4Network(
        f"{net.network_address + rng.randrange(net.num_addresses)}/{rng.randint(28, 30)}", False
    )
    return str(sub) if sub.subnet_of(net) else str(net)


def _subdomain(rng: random.Random, domain: str) -> str:
    """The domain, or a name one or two labels below it, sometimes in the case and with the dot people type."""
    below = rng.choice(("", "www.", "api.", f"{rng.choice(WORDS)}.eu."))
    name = below + domain
    return name.upper() + "." if rng.random() < 0.05 else name
