"""Where a run connects, as the keys of its host leases (host politeness, docs/politeness.md). Pure.

A host is an IP address: a run reaching at most `wide_after` addresses (TOOLRUNNER_HOST_WIDE_AFTER, 16) holds a
lease on each. A wider run is keyed by blocks, so that its cost stays bounded: the /24 (IPv4) or /64 (IPv6)
blocks it touches while they are at most MAX_KEYS, else its /16 or /48 regions, else the whole address family
(one key, `0.0.0.0/0` or `::/0`). Keys nest: an address lies in its block, a block in its region, a region in its
family. A run on a key counts against every host inside it, so the admission script compares each key with the
runs on the keys above it and with the busiest key below it (tasks/worker/lua/common.lua, `host_fits`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tasks.scope.host import Span, hex_span

MAX_KEYS = 256  # the most keys one run holds: each costs a few Redis calls per admission check
LEVELS = {4: (32, 24, 16, 0), 6: (128, 64, 48, 0)}  # prefix lengths of addresses, blocks, regions, the family
_BITS = {4: 32, 6: 128}


@dataclass(frozen=True)
class HostKey:
    """One lease key: its text (`198.51.100.7`, `198.51.100.0/24`), its span and the keys above it, nearest first."""

    text: str
    version: int
    first: int
    last: int
    above: tuple[str, ...]

    def wire(self) -> list[object]:
        """The key as the admission scripts read it from a run's envelope: [text, version, first and last address as
        fixed-width hex (host.hex_span), above]."""
        return [self.text, *hex_span((self.version, self.first, self.last)), list(self.above)]


def host_keys(spans: Iterable[Span], wide_after: int) -> list[HostKey]:
    """The lease keys of a run reaching these spans (addresses and networks), sorted and without repeats."""
    merged = _merged(spans)
    if sum(last - first + 1 for _, first, last in merged) <= wide_after:
        return sorted({_key(version, value, 0) for version, first, last in merged for value in range(first, last + 1)},
                      key=_order)  # fmt: skip
    for level in (1, 2, 3):
        keys: set[HostKey] = set()
        for version, first, last in merged:
            keys.update(_keys_at(version, first, last, level, MAX_KEYS + 1 - len(keys)))
            if len(keys) > MAX_KEYS:
                break
        if len(keys) <= MAX_KEYS:
            return sorted(keys, key=_order)
    raise AssertionError("the family level has at most two keys")  # pragma: no cover


def _merged(spans: Iterable[Span]) -> list[Span]:
    merged: list[list[int]] = []
    for version, first, last in sorted(spans):
        if merged and merged[-1][0] == version and first <= merged[-1][2] + 1:
            merged[-1][2] = max(merged[-1][2], last)
        else:
            merged.append([version, first, last])
    return [(v, f, last) for v, f, last in merged]


def _keys_at(version: int, first: int, last: int, level: int, most: int) -> Iterator[HostKey]:
    """The keys at `level` covering first..last; stops after `most` (the caller then tries the next level)."""
    shift = _BITS[version] - LEVELS[version][level]
    for count, base in enumerate(range(first >> shift, (last >> shift) + 1)):
        if count >= most:
            return
        yield _key(version, base << shift, level)


def _key(version: int, value: int, level: int) -> HostKey:
    prefix = LEVELS[version][level]
    network = ipaddress.IPv4Network((value, prefix)) if version == 4 else ipaddress.IPv6Network((value, prefix))
    text = str(network.network_address) if level == 0 else str(network)
    above = tuple(str(network.supernet(new_prefix=coarser)) for coarser in LEVELS[version][level + 1 :])
    first = int(network.network_address)
    return HostKey(text, version, first, first | ((1 << (_BITS[version] - prefix)) - 1), above)


def _order(key: HostKey) -> tuple[int, int, int]:
    return key.version, key.first, key.last
