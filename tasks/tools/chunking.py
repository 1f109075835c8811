"""How a tool's targets split into chunks: pure, and lazy (a /16 is never a 65,536-item list in memory).

A tool declares `ToolSpec.chunking`: which params field holds its targets, how many go in a chunk, and whether
they are counted as items (a URL, a domain: one each) or as addresses (an address: one; a network: the addresses
it holds, split into aligned sub-networks of at most a chunk's size, so a chunk's targets stay a short list).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Unit(enum.Enum):
    """What a chunk's size counts."""

    ITEMS = "items"  # each target is one (URLs, hosts, domains)
    ADDRESSES = "addresses"  # each address a target covers is one (a network is as many as it holds)


@dataclass(frozen=True)
class Chunking:
    """How a tool's targets split: the params field that holds them, at most `size` per chunk, counted in `unit`."""

    field: str
    size: int
    unit: Unit = Unit.ITEMS

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"chunk size must be at least 1, got {self.size}")


def weight(targets: Iterable[str], unit: Unit) -> int:
    """How many units the targets count (a network's addresses, never listed)."""
    if unit is Unit.ITEMS:
        return sum(1 for _ in targets)
    return sum(_addresses(target) for target in targets)


def split(targets: Iterable[str], size: int, unit: Unit) -> Iterator[list[str]]:
    """The targets in order, in chunks of at most `size` units; each chunk non-empty.

    Counted in addresses, a network larger than what is left of a chunk is cut into aligned sub-networks that
    fit (a /16 in chunks of 64: 1,024 /26s), made one at a time as the chunks are taken.
    """
    chunk: list[str] = []
    room = size
    for target in targets:
        for piece, count in _pieces(target, size, unit):
            if count > room:
                yield chunk
                chunk, room = [], size
            chunk.append(piece)
            room -= count
            if room == 0:
                yield chunk
                chunk, room = [], size
    if chunk:
        yield chunk


def chunk_count(targets: Sequence[str], size: int, unit: Unit) -> int:
    """How many chunks `split` makes of these targets (counted without holding them)."""
    return sum(1 for _ in split(targets, size, unit))


def _network(target: str) -> Network | None:
    """The network a target written as an address or a CIDR network stands for; None for a name."""
    try:
        return ipaddress.ip_network(target.strip(), strict=False)
    except ValueError:
        return None


def _addresses(target: str) -> int:
    network = _network(target)
    return 1 if network is None else network.num_addresses


def _pieces(target: str, size: int, unit: Unit) -> Iterator[tuple[str, int]]:
    """A target as the pieces a chunk holds, each with its count: itself, or its aligned sub-networks."""
    network = None if unit is Unit.ITEMS or "/" not in target else _network(target)
    if network is None or network.num_addresses <= size:
        yield target, (1 if network is None else network.num_addresses)
        return
    # The largest power of two that fits a chunk: sub-networks of that many addresses fill chunks exactly.
    bits = size.bit_length() - 1
    prefix = network.max_prefixlen - bits
    for sub in network.subnets(new_prefix=prefix):
        yield (str(sub.network_address) if sub.num_addresses == 1 else str(sub)), sub.num_addresses
