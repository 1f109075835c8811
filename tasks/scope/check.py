"""The scope check of a run: every target as its tool reads it, against the tenant's scope and the operator's policy.

Names are resolved at admission and refused when any address they resolve to is denied or private. This
cannot stop the tool resolving again and getting another answer (DNS rebinding): the egress fence
(config/egress.py) is the backstop for that, and docs/scope.md says how a deployment closes the gap.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tasks.errors import OutOfScopeError, TargetError, UnreachableTargetError
from tasks.scope import host
from tasks.scope.matcher import Policy, Ranges, Scope
from tasks.scope.resolve import Resolver
from tasks.tools import TargetKind, ToolSpec

SHOWN = 10  # refused targets named in the error; the rest are counted
_CONNECTED = frozenset({TargetKind.HOST, TargetKind.WEB, TargetKind.URL})  # kinds whose hosts the tool connects to
# Loopback, 127.0.0.0/8 and ::1: from a container on any network but the host's it is the container's own, where
# nothing listens, so a scan of a local server would read its open ports as closed (issue 32).
LOOPBACK: tuple[host.Span, ...] = ((4, 0x7F000000, 0x7FFFFFFF), (6, 1, 1))


@dataclass(frozen=True)
class Refusal:
    """One target refused, and why."""

    target: str
    reason: str


@dataclass(frozen=True)
class Checker:
    """What checks runs: the operator's policy, a resolver and its time bound (the tenant's scope comes per run)."""

    policy: Policy
    resolve: Resolver
    resolve_timeout: float


def check(
    spec: ToolSpec, params: Any, tenant: str, *, scope: Scope | None, network: str, checker: Checker,
    resolved: dict[str, list[str]] | None = None,
) -> list[host.Span]:  # fmt: skip
    """Refuse the run (OutOfScopeError) unless every target is allowed; `scope` None means scope is off.

    Returns where the run's tool connects: the addresses and networks of its host, web and URL targets and the
    addresses their names resolved to at admission (host politeness keys its leases on them, tasks/scope/reach.py).
    Domain targets (dnsx and subfinder ask resolvers and passive sources about them) and resolvers reach none.
    `resolved` collects each allowed name's addresses (the audit's record of where the run was sent).
    """
    if spec.targets is None:
        if network != "none" and scope is not None:
            raise OutOfScopeError(
                f"tool {spec.name} has network access ({network}) but declares no targets, so its scope cannot be "
                "checked: declare them in its ToolSpec (targets=...) or run it with network none"
            )
        return []
    if scope is not None and scope.empty:
        raise OutOfScopeError(
            f"tenant {tenant} has no scope, so it may scan nothing: add one with "
            f"`toolrunner scope add --tenant {tenant} ENTRY...` (or tasks.scope.add from Python)"
        )
    reached: list[host.Span] = []
    refused = list(refusals(spec, params, scope, checker, reached=reached, resolved=resolved))
    if refused:
        raise OutOfScopeError(message(tenant, refused))
    if network != "host" and (local := on_loopback(reached)):
        raise UnreachableTargetError(
            f"refused: loopback {', '.join(local)}: a tool container on network {network} cannot reach this "
            "machine's loopback (it would scan its own, where nothing listens, and report open ports closed); set "
            "TOOLRUNNER_TOOL_NETWORK=host on the worker to scan local targets"
        )
    return reached


def on_loopback(reached: list[host.Span]) -> list[str]:
    """The loopback parts of where a run connects, as addresses or networks, each once in the order reached."""
    found: dict[str, None] = {}
    for version, first, last in reached:
        for loop_version, loop_first, loop_last in LOOPBACK:
            if version == loop_version and first <= loop_last and loop_first <= last:
                network = host.as_network((version, max(first, loop_first), min(last, loop_last)))
                found[str(network.network_address if network.num_addresses == 1 else network)] = None
    return list(found)


def refusals(
    spec: ToolSpec, params: Any, scope: Scope | None, checker: Checker, *, reached: list[host.Span] | None = None,
    resolved: dict[str, list[str]] | None = None,
) -> Iterator[Refusal]:  # fmt: skip
    """Every refused target of a run, its names resolved once all targets were read; `reached` collects where the
    allowed ones connect (check's return)."""
    if scope is not None and spec.wanders is not None and (why := spec.wanders(params)):
        yield Refusal("params", why)
    names: dict[str, str] = {}
    policy = checker.policy
    clear = scope.clear(policy) if scope is not None else policy.clear
    for kind, text in spec.targets(params) if spec.targets else ():
        why, found, name = _verdict(kind, text, scope, policy, clear)
        if why:
            yield Refusal(text, why)
        elif name is not None and kind is not TargetKind.DOMAIN:
            names.setdefault(name, text)
        elif found is not None and reached is not None and kind in _CONNECTED:
            reached.append(found)
    yield from _resolved(names, scope, checker, reached, resolved)


def _verdict(
    kind: TargetKind, text: str, scope: Scope | None, policy: Policy, clear: Ranges
) -> tuple[str | None, host.Span | None, str | None]:
    """Why a target is refused (None: allowed), and the span or the name it sends its tool to (None when refused
    unread). The plain forms first, each read in one match without building a Host: half a check's cost
    (bench.scope); an address in `clear` needs no reasons."""
    if (quad := host.plain_address(kind, text)) is not None:
        return (None if clear.covers_span(quad) else _span_reason(quad, scope, policy)), quad, None
    if (plain := host.plain_name(kind, text)) is not None:
        return policy.name_reason(plain) or (scope.name_reason(plain) if scope else None), None, plain
    try:
        found = host.read(kind, text)
    except TargetError as exc:
        return str(exc), None, None
    if found.span is not None and kind is not TargetKind.RESOLVER and clear.covers_span(found.span):
        return None, found.span, None
    return _reason(kind, found, scope, policy), found.span, found.name


def _reason(kind: TargetKind, found: host.Host, scope: Scope | None, policy: Policy) -> str | None:
    if kind is TargetKind.RESOLVER:
        assert found.span is not None
        if policy.deny_ranges.touches_span(found.span) or not policy.resolvers.covers_span(found.span):
            return "not a resolver the operator allows (TOOLRUNNER_SCOPE_RESOLVERS)"
        return None
    if found.span is not None:
        return _span_reason(found.span, scope, policy)
    assert found.name is not None
    return policy.name_reason(found.name) or (scope.name_reason(found.name) if scope else None)


def _span_reason(found: host.Span, scope: Scope | None, policy: Policy) -> str | None:
    return policy.span_reason(found) or (scope.span_reason(found) if scope else None)


def _resolved(
    names: dict[str, str], scope: Scope | None, checker: Checker, reached: list[host.Span] | None,
    resolved: dict[str, list[str]] | None,
) -> Iterator[Refusal]:  # fmt: skip
    """Refusals of names that resolve to a denied, private or excluded address, or that did not resolve in time.

    A name is in scope by its domain entries, wherever it points; but an exclusion wins over every inclusion, so
    a name pointing into one (the production database behind db.example.com) is refused like its address.
    """
    answers = checker.resolve(sorted(names), checker.resolve_timeout)
    for name, text in names.items():
        addresses = answers.get(name)
        if addresses is None:
            timeout = checker.resolve_timeout
            yield Refusal(text, f"{name} did not resolve within {timeout:g}s at admission (timeout or server failure)")
            continue
        for address in map(host.unwrapped, addresses):  # as the tool connects: ::ffff:10.0.0.1 is 10.0.0.1
            if why := _address_reason(ipaddress.ip_network(address), scope, checker.policy):
                yield Refusal(text, f"{name} resolves to {address}, {why}")
                break
            if reached is not None:
                reached.append((address.version, int(address), int(address)))
            if resolved is not None:
                resolved.setdefault(name, []).append(str(address))


def _address_reason(found: host.Network, scope: Scope | None, policy: Policy) -> str | None:
    if why := policy.network_reason(found):
        return why
    excluded = scope is not None and scope.exclude_ranges.touches(found)
    return "excluded from the tenant's scope" if excluded else None


def message(tenant: str, refused: list[Refusal]) -> str:
    """The error of a refused run: the first SHOWN targets with their reasons, and how many in all."""
    shown = "; ".join(f"{r.target!r}: {r.reason}" for r in refused[:SHOWN])
    more = f" (and {len(refused) - SHOWN} more)" if len(refused) > SHOWN else ""
    return (
        f"refused: {len(refused)} target(s) outside tenant {tenant}'s scope or denied: {shown}{more}; "
        f"see `toolrunner scope show --tenant {tenant}`"
    )


def outside(scope: Scope, policy: Policy) -> Callable[[str], bool]:
    """Whether a host a finding names (an address, a name or a URL) is outside the scope; unreadable is outside."""

    def is_outside(text: str) -> bool:
        try:
            found = host.read(TargetKind.WEB, text)
        except TargetError:
            return True
        return _reason(TargetKind.WEB, found, scope, policy) is not None

    return is_outside
