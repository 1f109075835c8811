"""Per-host overrides as stored: a host or network read as scope reads one, its limits checked, and the compact
JSON value the fair-share Lua reads without 128-bit arithmetic. Pure.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from config import Settings
from tasks.errors import HostOverrideError, TargetError
from tasks.scope import host
from tasks.scope.host import Span, hex_span

_BITS = {4: 32, 6: 128}


@dataclass(frozen=True)
class Override:
    """One operator's override: the canonical network it covers and the limits it sets (None: not set by it)."""

    host: str
    span: Span
    max_running: int | None
    max_rps: float | None

    @property
    def prefix(self) -> int:
        """The network's prefix length: the longer, the more specific."""
        version, first, last = self.span
        return _BITS[version] - (last - first).bit_length()


def read(text: str) -> Span:
    """The span of an IP address or CIDR network (IPv4-mapped IPv6 read as IPv4, as tasks.scope.host reads it)."""
    given = text.strip()
    if not given:
        raise HostOverrideError("no host given: write an IP address or a CIDR network")
    try:
        if "/" in given:
            return host.network_span(given)
        found = host.address_span(given)
    except TargetError as exc:
        raise HostOverrideError(str(exc)) from None
    if found is None:
        raise HostOverrideError(_not_an_address(given))
    return found


def _not_an_address(text: str) -> str:
    try:
        found = host.name(text)
    except TargetError:
        return f"{text!r} is not an IP address or CIDR network (192.0.2.7, 192.0.2.0/24, 2001:db8::/64)"
    return f"{text!r} is a name: a host is an IP address or CIDR network (`dig +short {found}` gives its addresses)"


def canonical(span: Span) -> str:
    """The network's canonical CIDR text, the hash field: an address as /32 or /128 (`198.51.100.7/32`)."""
    return str(host.as_network(span))


def checked(max_running: int | None, max_rps: float | None) -> tuple[int | None, float | None]:
    """The limits, or HostOverrideError: at least one; max_running a whole number 1-1000, max_rps 1 to 100,000 (the
    bounds of TOOLRUNNER_HOST_MAX_RUNNING and TOOLRUNNER_HOST_MAX_RPS: httpx, nuclei, naabu and dnsx take whole
    requests per second, so below 1 they could never be told their share)."""
    if max_running is None and max_rps is None:
        raise HostOverrideError("give --max-running, --max-rps or both: an override sets at least one limit")
    ceiling = _ceiling("host_max_running")
    if max_running is not None and (
        isinstance(max_running, bool) or not isinstance(max_running, int) or not 1 <= max_running <= ceiling
    ):
        raise HostOverrideError(f"max running must be a whole number from 1 to {ceiling:g}, not {_shown(max_running)}")
    ceiling = _ceiling("host_max_rps")
    if max_rps is not None and (
        isinstance(max_rps, bool) or not isinstance(max_rps, int | float) or not 1 <= max_rps <= ceiling
    ):
        raise HostOverrideError(f"max rps must be a number from 1 to {ceiling:g}, not {_shown(max_rps)}")
    return max_running, None if max_rps is None else float(max_rps)


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) else repr(value)


def _ceiling(field: str) -> float:
    """The setting's upper bound: an override may not go past what the default itself may be."""
    return float(next(bound.le for bound in Settings.model_fields[field].metadata if hasattr(bound, "le")))


def encode(override: Override) -> str:
    """The hash value: `{"v":4,"lo":"c6336407","hi":"c6336407","p":32,"n":1,"r":null}` (n: max running, r: max rps)."""
    version, lo, hi = hex_span(override.span)
    value = {"v": version, "lo": lo, "hi": hi, "p": override.prefix, "n": override.max_running, "r": override.max_rps}
    return json.dumps(value, separators=(",", ":"))


def decode(field: str, value: str) -> Override:
    """The override a hash field and value hold; ValueError when they do not agree or cannot be read."""
    raw: dict[str, Any] = json.loads(value)
    span = (int(raw["v"]), int(raw["lo"], 16), int(raw["hi"], 16))
    if canonical(span) != field or hex_span(span) != (raw["v"], raw["lo"], raw["hi"]):
        raise ValueError(f"the value of {field} is for another network")
    running, rps = raw["n"], raw["r"]
    if (running is None and rps is None) or (rps is not None and not math.isfinite(rps)):
        raise ValueError(f"the value of {field} sets no usable limit")
    return Override(field, span, None if running is None else int(running), None if rps is None else float(rps))
