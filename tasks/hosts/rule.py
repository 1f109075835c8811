"""The one rule that turns operators' per-host overrides into a host key's limits (the fair-share Lua mirrors it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tasks.hosts.override import Override
from tasks.scope.host import Span


@dataclass(frozen=True)
class Limits:
    """A host key's limits, and the canonical network of the override each came from (None: the default)."""

    max_running: int
    max_rps: float
    max_running_from: str | None = None
    max_rps_from: str | None = None


def effective(overrides: Iterable[Override], span: Span, default_running: int, default_rps: float) -> Limits:
    """The limits of the host key `span` (an address, or the /24 or /64 block a very wide run is keyed by).

    Each limit on its own:
    1. the most specific override that covers the whole key and sets that limit gives it (the longest prefix;
       an override that sets only the other limit is passed over for the next one out), else the default;
    2. then every override strictly narrower than the key that overlaps it (a host or a /28 inside a /24 block)
       and sets that limit tightens it: the smallest value wins. A narrower override never loosens a block.
    Overrides of the other IP version never apply. On a tie the value keeps the source it already had, and
    among narrower overrides the first in (first address, prefix length) order gives it.
    """
    version, first, last = span
    same = sorted((o for o in overrides if o.span[0] == version), key=lambda o: (o.span[1], o.prefix))
    covering = sorted((o for o in same if o.span[1] <= first and last <= o.span[2]), key=lambda o: -o.prefix)
    inside = [o for o in same if first <= o.span[1] and o.span[2] <= last and o.span != span]
    running, running_from = _one(covering, inside, lambda o: o.max_running, default_running)
    rps, rps_from = _one(covering, inside, lambda o: o.max_rps, default_rps)
    return Limits(int(running), float(rps), running_from, rps_from)


def _one(
    covering: list[Override], inside: list[Override], limit: Callable[[Override], float | None], default: float
) -> tuple[float, str | None]:
    """One limit by the rule: the most specific covering override that sets it, then the narrower ones' minimum."""
    value, source = default, None
    for override in covering:
        found = limit(override)
        if found is not None:
            value, source = found, override.host
            break
    for override in inside:
        found = limit(override)
        if found is not None and found < value:
            value, source = found, override.host
    return value, source
