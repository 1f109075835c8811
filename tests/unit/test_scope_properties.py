"""Property-based: the check accepts exactly the targets a naive reading puts inside the scope; the matcher agrees.

The reference reads a target independently (Python's ipaddress on the canonical text, urllib's split for URLs)
and decides by looping over every entry, exclusion, deny item and private range; addresses and names are drawn
from a few small blocks so that scopes, targets and exclusions overlap often.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from config import Settings
from tasks.errors import TargetError
from tasks.scope import host
from tasks.scope.check import Checker
from tasks.scope.entry import Entry, parse
from tasks.scope.matcher import Policy, Ranges, Scope
from tasks.scope.policy import ALWAYS_DENIED, PRIVATE, policy
from tasks.tools import TargetKind
from tests.unit.helpers import Answers, refusal, targets_spec

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
HOST, DOMAIN, WEB, URL = TargetKind.HOST, TargetKind.DOMAIN, TargetKind.WEB, TargetKind.URL
EXAMPLES = settings(max_examples=200, deadline=None)

V4_BLOCKS = ("198.51.0.0", "203.0.0.0", "10.1.0.0", "100.64.0.0", "169.254.0.0")  # public, private, always denied
V6_BLOCKS = ("2001:db8::", "fd00:1::", "fe80::")
BASES = ("example.com", "example.org", "example.co.uk", "xample.com")
LABELS = ("a", "www")
DENY_CHOICES = ("198.51.3.0/24", "2001:db8:0:3::/64", "a.example.org", "=www.example.com", "203.0.1.7")
ALLOW_CHOICES = ("10.1.0.0/17", "10.1.128.0/17", "10.1.4.0/24", "fd00:1::/48", "100.64.0.0/16")


def net(text: str) -> Net:
    return ipaddress.ip_network(text, strict=False)


# --- strategies ------------------------------------------------------------------------------------------------------

v4_addresses = st.builds(
    lambda base, third, fourth: str(ipaddress.IPv4Address(base) + (third << 8) + fourth),
    st.sampled_from(V4_BLOCKS), st.integers(0, 7), st.integers(0, 255),
)  # fmt: skip
v6_addresses = st.builds(
    lambda base, subnet, interface: str(ipaddress.IPv6Address(base) + (subnet << 64) + interface),
    st.sampled_from(V6_BLOCKS), st.integers(0, 7), st.integers(0, 255),
)  # fmt: skip
addresses = st.one_of(v4_addresses, v6_addresses)


def networks(v4_prefixes: Sequence[int], v6_prefixes: Sequence[int]) -> st.SearchStrategy[str]:
    """Network texts as a person writes them: any address of the network, then its prefix."""
    v4 = st.builds(lambda a, p: f"{a}/{p}", v4_addresses, st.sampled_from(v4_prefixes))
    v6 = st.builds(lambda a, p: f"{a}/{p}", v6_addresses, st.sampled_from(v6_prefixes))
    return st.one_of(v4, v6)


entry_networks = networks((16, 20, 22, 24, 25, 28, 31, 32), (48, 60, 64, 120, 126, 128))
target_networks = networks((21, 23, 24, 26, 29, 30, 32), (56, 63, 64, 121, 127, 128))
names = st.builds(lambda labels, base: ".".join([*labels, base]), st.lists(st.sampled_from(LABELS), max_size=2),
                  st.sampled_from(BASES))  # fmt: skip
domain_entries = st.builds(lambda name, exact: f"={name}" if exact else name, names, st.booleans())
entries = st.one_of(entry_networks, domain_entries)


def spelled(draw: st.DrawFn, name: str) -> str:
    """A name as a request may write it: any case, with or without the trailing dot."""
    upper = draw(st.integers(0, 2 ** len(name) - 1))
    cased = "".join(c.upper() if upper >> i & 1 else c for i, c in enumerate(name))
    return cased + ("." if draw(st.booleans()) else "")


def near_address(draw: st.DrawFn, found: Sequence[Net]) -> str:
    """An address, mostly inside one of these networks."""
    if not found or draw(st.integers(0, 2)) == 0:
        return draw(addresses)
    chosen = draw(st.sampled_from(found))
    return str(chosen.network_address + draw(st.integers(0, chosen.num_addresses - 1)))


def near_name(draw: st.DrawFn, domains: Sequence[str]) -> str:
    """A name, mostly at or below one of these domains."""
    if not domains or draw(st.integers(0, 2)) == 0:
        return draw(names)
    return draw(st.sampled_from(("", "a.", "www."))) + draw(st.sampled_from(domains))


@st.composite
def targets(draw: st.DrawFn, world: World) -> tuple[TargetKind, str]:
    """A target of any kind in a spelling the tools and the reference read alike, often near the world's entries."""
    form = draw(st.sampled_from(FORMS))
    address, name = near_address(draw, world.networks), spelled(draw, near_name(draw, world.domains))
    prefix = draw(st.sampled_from((21, 23, 24, 26, 29, 30, 32) if ":" not in address else (56, 63, 64, 121, 127, 128)))
    host = draw(st.sampled_from([f"[{address}]" if ":" in address else address, name]))
    port = draw(st.sampled_from(["", ":80", ":8443"]))
    return form[0], form[1].format(address=address, name=name, prefix=prefix, host=host, port=port)


FORMS = (
    (HOST, "{address}"), (HOST, "{address}/{prefix}"), (HOST, "{name}"), (DOMAIN, "{name}"), (WEB, "{address}"),
    (WEB, "{host}{port}"), (WEB, "https://{host}{port}/login?next=/"), (URL, "http://{host}{port}/a/b"),
)  # fmt: skip


@dataclass(frozen=True)
class World:
    """A tenant's entries and exclusions (None: scope off), the operator's settings and what names resolve to."""

    include: tuple[str, ...] | None
    exclude: tuple[str, ...]
    deny: tuple[str, ...]
    allow: tuple[str, ...]
    answers: dict[str, list[str]] = field(default_factory=dict)  # filled in with the targets' names
    networks: list[Net] = field(init=False, repr=False)  # of the entries and exclusions: where targets are drawn
    domains: list[str] = field(init=False, repr=False)
    excluded: list[Net] = field(init=False, repr=False)  # where answers are drawn too: exclusions win over names

    def __post_init__(self) -> None:
        found_networks, domains = split([*(self.include or ()), *self.exclude])
        object.__setattr__(self, "networks", found_networks)
        object.__setattr__(self, "excluded", split(self.exclude)[0])
        object.__setattr__(self, "domains", [d.removeprefix("=") for d in domains])


@st.composite
def worlds(draw: st.DrawFn) -> World:
    enforced = draw(st.integers(0, 9)) > 0
    include = tuple(draw(st.lists(entries, min_size=1, max_size=6))) if enforced else None  # none: test_scope_check
    exclude = tuple(draw(st.lists(entries, max_size=3))) if enforced else ()
    deny = tuple(draw(st.lists(st.sampled_from(DENY_CHOICES), max_size=3, unique=True)))
    allow = tuple(draw(st.lists(st.sampled_from(ALLOW_CHOICES), max_size=3, unique=True)))
    return World(include, exclude, deny, allow)


@st.composite
def cases(draw: st.DrawFn) -> tuple[World, list[tuple[TargetKind, str]]]:
    """A world, targets, and what the names among them resolve to (often near the world's networks)."""
    world = draw(worlds())
    found = draw(st.lists(targets(world), min_size=1, max_size=8))
    for name in {host for _, text in found if isinstance(host := reference_host(text), str)}:
        near = draw(st.sampled_from([world.networks, world.excluded or world.networks]))
        world.answers[name] = [near_address(draw, near) for _ in range(draw(st.integers(0, 2)))]
    return world, found


# --- the naive reference ---------------------------------------------------------------------------------------------


def overlaps_any(target: Net, networks: Iterable[Net]) -> bool:
    return any(n.version == target.version and target.overlaps(n) for n in networks)


def covered(target: Net, networks: Sequence[Net]) -> bool:
    """Whether every address of target is in some network: split the target until each half is inside one or none."""
    same = [n for n in networks if n.version == target.version]
    if any(target.subnet_of(n) for n in same):  # type: ignore[arg-type]
        return True
    if not overlaps_any(target, same) or target.prefixlen == target.max_prefixlen:
        return False
    return all(covered(half, same) for half in target.subnets())


def name_in(name: str, domains: Iterable[str]) -> bool:
    """Whether name is one of the domain entries: itself for =name, itself or below it otherwise."""
    return any(name == d[1:] if d.startswith("=") else name == d or name.endswith("." + d) for d in domains)


def split(items: Iterable[str]) -> tuple[list[Net], list[str]]:
    """Entry texts as networks (normalised by ipaddress) and domain texts (lower case, their dot dropped)."""
    found_networks, domains = [], []
    for item in items:
        try:
            found_networks.append(net(item))
        except ValueError:
            domains.append(item.lower().rstrip("."))
    return found_networks, domains


def reference_host(text: str) -> Net | str:
    """The host of a target read independently: an address or network, else the host of a URL split by urllib."""
    try:
        return net(text)
    except ValueError:
        pass
    hostname = urlsplit(text if "://" in text else f"//{text}").hostname or ""
    try:
        return net(hostname)
    except ValueError:
        return hostname.removesuffix(".")


def network_allowed(found: Net, world: World, *, in_scope_by_name: bool = False) -> bool:
    include, _ = split(world.include or ())
    exclude, _ = split(world.exclude)
    denied, _ = split([*ALWAYS_DENIED, *world.deny])
    allowed, _ = split(world.allow)
    if overlaps_any(found, denied) or overlaps_any(found, exclude):
        return False
    if overlaps_any(found, [net(p) for p in PRIVATE]) and not covered(found, allowed):
        return False
    return world.include is None or in_scope_by_name or covered(found, include)


def reference_allowed(kind: TargetKind, text: str, world: World) -> bool:
    if kind is WEB and "://" not in text and text.count(":") > 1 and not text.startswith("["):
        return False  # a bare IPv6 web target: Go's URL parser may take its last group for a port
    found = reference_host(text)
    if not isinstance(found, str):
        return network_allowed(found, world)
    _, denied_names = split(world.deny)
    _, include = split(world.include or ())
    _, exclude = split(world.exclude)
    if name_in(found, denied_names) or name_in(found, exclude):
        return False
    if world.include is not None and not name_in(found, include):
        return False
    resolved = [] if kind is DOMAIN else world.answers.get(found, [])
    return all(network_allowed(net(a), world, in_scope_by_name=True) for a in resolved)


# --- properties ------------------------------------------------------------------------------------------------------


@EXAMPLES
@given(cases())
def test_the_check_accepts_a_target_exactly_when_a_loop_over_every_entry_puts_it_inside(
    case: tuple[World, list[tuple[TargetKind, str]]],
) -> None:
    world, found = case
    scope = None if world.include is None else Scope.of(map(entry, world.include), map(entry, world.exclude))
    checker = Checker(operator_policy(world.deny, world.allow), Answers(world.answers), resolve_timeout=5)
    for kind, text in found:
        accepted = refusal(targets_spec(), [(kind, text)], scope, checker) is None
        assert accepted == reference_allowed(kind, text, world), (kind, text)


@functools.cache
def operator_policy(deny: tuple[str, ...], allow: tuple[str, ...]) -> Policy:
    return policy(Settings(scope_deny=deny, scope_allow_private=allow))


def entry(text: str) -> Entry:
    return parse(text, max_prefix_v4=0, max_prefix_v6=0)


@EXAMPLES
@given(
    st.lists(entries, max_size=8), st.lists(entries, max_size=3),
    st.lists(target_networks, min_size=1, max_size=8), st.lists(names, min_size=1, max_size=8),
)  # fmt: skip
def test_the_compiled_scope_gives_the_reason_a_loop_over_every_entry_gives(
    include: list[str], exclude: list[str], probes: list[str], probe_names: list[str]
) -> None:
    scope = Scope.of([parse(e, max_prefix_v4=0, max_prefix_v6=0) for e in include],
                     [parse(e, max_prefix_v4=0, max_prefix_v6=0) for e in exclude])  # fmt: skip
    (include_networks, include_names), (exclude_networks, exclude_names) = split(include), split(exclude)
    for probe in map(net, probes):
        expected = (
            "excluded from the tenant's scope" if overlaps_any(probe, exclude_networks)
            else None if covered(probe, include_networks)
            else "partly outside the tenant's scope" if overlaps_any(probe, include_networks)
            else "outside the tenant's scope"
        )  # fmt: skip
        assert scope.network_reason(probe) == expected, probe
    for name in probe_names:
        expected = (
            "excluded from the tenant's scope" if name_in(name, exclude_names)
            else None if name_in(name, include_names)
            else "outside the tenant's scope"
        )  # fmt: skip
        assert scope.name_reason(name) == expected, name


any_v4_networks = st.builds(
    lambda value, prefix: ipaddress.ip_network((value, prefix), strict=False), st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)  # fmt: skip


@st.composite
def pieces(draw: st.DrawFn) -> list[Net]:
    """Some of the subnets a network splits into (adjacent ones among them), and the network itself as a probe."""
    parent = net(draw(target_networks))
    parent = parent.supernet(new_prefix=min(parent.prefixlen, parent.max_prefixlen - 3))
    depth = draw(st.integers(1, 3))
    return [parent, *draw(st.lists(st.sampled_from(list(parent.subnets(prefixlen_diff=depth))), unique=True))]


@EXAMPLES
@given(st.lists(st.one_of(any_v4_networks, target_networks.map(net)), max_size=8), st.lists(pieces(), max_size=3),
       st.lists(st.one_of(any_v4_networks, target_networks.map(net)), max_size=6))  # fmt: skip
def test_merged_ranges_cover_and_touch_exactly_what_the_union_of_their_networks_does(
    members: list[Net], split_networks: list[list[Net]], probes: list[Net]
) -> None:
    parts = [part for parent, *subnets in split_networks for part in subnets]
    compiled = Ranges([*members, *parts])
    for probe in [*probes, *(parent for parent, *_ in split_networks)]:
        assert compiled.covers(probe) == covered(probe, [*members, *parts]), probe
        assert compiled.touches(probe) == overlaps_any(probe, [*members, *parts]), probe


@EXAMPLES
@given(st.lists(st.one_of(any_v4_networks, target_networks.map(net)), max_size=8),
       st.lists(st.one_of(any_v4_networks, target_networks.map(net)), max_size=8),
       st.lists(st.one_of(any_v4_networks, target_networks.map(net), v4_addresses.map(net)), max_size=8))  # fmt: skip
def test_ranges_minus_cover_exactly_what_is_in_the_first_networks_and_touches_none_of_the_second(
    members: list[Net], cuts: list[Net], probes: list[Net]
) -> None:
    left = Ranges(members).minus(Ranges(cuts))
    for probe in [*probes, *members, *cuts]:
        assert left.covers(probe) == (covered(probe, members) and not overlaps_any(probe, cuts)), probe


# Texts near the plain forms, and past their edges: case, trailing dots, ports out of range, leading zeros,
# numeric last labels, user info, brackets, schemes, over-long names.
_EDGES = st.sampled_from((
    "a.example.com", "A.example.com", "a.example.com.", "example", "as15169", "as15169.net", "a-.example.com",
    "x.0x7f", "x.123", "_srv.example.com", "198.51.0.7", "198.051.0.7", "198.51.0.256", "1.2.3.4.5", "::1",
    "[2001:db8::1]", "user@a.example.com", "a.example.com\\b", ("a" * 63 + ".") * 4 + "com",
))  # fmt: skip
_TAILS = st.sampled_from(("", ":80", ":0", ":65535", ":65536", ":8o", "/", "/login?next=/", "?q", "#f", "\\x", ":"))
_SCHEMES = st.sampled_from(("", "http://", "https://", "HTTP://", "ftp://", "https:/"))


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(list(TargetKind)), _SCHEMES, st.one_of(_EDGES, names, addresses), _TAILS)
def test_the_plain_readers_find_what_read_finds_wherever_they_answer(
    kind: TargetKind, scheme: str, middle: str, tail: str
) -> None:
    text = f"{scheme}{middle}{tail}"
    quad, plain = host.plain_address(kind, text), host.plain_name(kind, text)
    if quad is None and plain is None:
        return  # read alone reads it
    assert quad is None or plain is None
    try:
        found = host.read(kind, text)
    except TargetError as exc:
        raise AssertionError(
            f"{kind} {text!r}: a plain reader answered {quad or plain!r}, read refused: {exc}"
        ) from None
    assert (found.span, found.name) == (quad, plain), (kind, text)


def test_the_plain_readers_answer_for_the_forms_api_tiers_send_most() -> None:
    assert host.plain_address(HOST, "198.51.0.7") == (4, 0xC6330007, 0xC6330007)
    assert host.plain_address(URL, "https://198.51.0.7:8443/login") == (4, 0xC6330007, 0xC6330007)
    assert host.plain_name(WEB, "a.example.com:8443") == "a.example.com"
    assert host.plain_name(URL, "https://a.example.com/login?next=/") == "a.example.com"
    assert host.plain_name(HOST, "A.example.com") is None  # read lowers it
