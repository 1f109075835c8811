"""The egress fence of tool containers on the inner Docker daemon, as `iptables-restore` input; pure.

Targets cannot be checked in the API tier alone: ffuf takes `FUZZ` in the host part (the wordlist picks
hosts), httpx and ffuf follow redirects, and tenant nuclei templates name any host. So the DinD
entrypoint installs these rules before its dockerd starts, and a tool container reaches only public
addresses: never private, loopback, link-local or metadata ranges (the compose networks with Redis, the
worker's metrics and the daemon's own TLS port included) unless an operator allow-lists a range.
Standalone (standard library only): the DinD image runs it as a script, `python3 egress.py --help`.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

EGRESS_CHAIN = "TOOLRUNNER-EGRESS"
INPUT_CHAIN = "TOOLRUNNER-INPUT"

# Cloud instance metadata (credentials live there): blocked before the allow-list, so no range an operator
# allow-lists ever opens them. AWS/GCP/Azure/OpenStack, Azure's WireServer, AWS over IPv6, Alibaba.
METADATA: tuple[tuple[str, str], ...] = (
    ("169.254.169.254/32", "instance metadata (AWS, GCP, Azure, OpenStack)"),
    ("168.63.129.16/32", "Azure WireServer: platform DNS, extension settings and certificates"),
    ("169.254.170.2/32", "ECS task metadata and credentials"),
    ("100.100.100.200/32", "Alibaba Cloud metadata"),
    ("fd00:ec2::254/128", "AWS instance metadata over IPv6"),
)

# Everything that is not the public Internet; the allow-list may open parts of these.
BLOCKED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT, used by some clouds for internal services"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private (RFC 1918): Docker's default address pools, so the compose networks"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved and broadcast"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "IPv4-mapped: would route around the IPv4 rules"),
    ("64:ff9b::/96", "NAT64: would route around the IPv4 rules"),
    ("64:ff9b:1::/48", "local-use NAT64 (RFC 8215): reaches private IPv4 where the network routes it"),
    ("2002::/16", "6to4: embeds any IPv4 address, private ones included"),
    ("fc00::/7", "unique local (private)"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
)


@dataclass(frozen=True)
class EgressPolicy:
    """What tool containers on `bridge` may reach: public addresses, plus `allow`, minus `deny`."""

    bridge: str = "docker0"
    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()


def parse_networks(text: str) -> tuple[Network, ...]:
    """Parse a comma- or space-separated list of addresses and CIDR ranges; ValueError on a bad one."""
    items = text.replace(",", " ").split()
    # strict: 10.1.2.3/8 is a typo for 10.0.0.0/8 or 10.1.2.3/32, never silently one of them.
    return tuple(ipaddress.ip_network(item, strict=True) for item in items)


def ruleset(policy: EgressPolicy, version: int) -> str:
    """The filter table for iptables-restore (version 4) or ip6tables-restore (version 6)."""
    if version not in (4, 6):
        raise ValueError(f"IP version must be 4 or 6, not {version}")
    if not policy.bridge.replace("-", "").replace("_", "").isalnum() or len(policy.bridge) > 15:
        raise ValueError(f"not an interface name: {policy.bridge!r}")
    lines = [
        "*filter",
        ":INPUT ACCEPT [0:0]",
        ":FORWARD ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        # dockerd puts a jump to DOCKER-USER first in FORWARD and never flushes this chain.
        ":DOCKER-USER - [0:0]",
        f":{EGRESS_CHAIN} - [0:0]",
        f":{INPUT_CHAIN} - [0:0]",
        f"-A DOCKER-USER -i {policy.bridge} -j {EGRESS_CHAIN}",
        "-A DOCKER-USER -j RETURN",
        # Tools may not open connections to the DinD container itself (its TLS port, anything on it).
        f"-A INPUT -i {policy.bridge} -j {INPUT_CHAIN}",
        f"-A {INPUT_CHAIN} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        f"-A {INPUT_CHAIN} -j {_reject(version)}",
        # Replies to connections that were allowed when they opened.
        f"-A {EGRESS_CHAIN} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        *_rules(_of_version(_networks(METADATA), version), _reject(version)),
        *_rules(_of_version(policy.deny, version), _reject(version)),
        *_rules(_of_version(policy.allow, version), "RETURN"),
        *_rules(_of_version(_networks(BLOCKED), version), _reject(version)),
        f"-A {EGRESS_CHAIN} -j RETURN",
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"


def _networks(table: Iterable[tuple[str, str]]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr, _ in table)


def _of_version(networks: Iterable[Network], version: int) -> list[Network]:
    return [network for network in networks if network.version == version]


def _rules(networks: Iterable[Network], target: str) -> list[str]:
    return [f"-A {EGRESS_CHAIN} -d {network} -j {target}" for network in networks]


def _reject(version: int) -> str:
    # REJECT rather than DROP: a fenced tool fails at once instead of waiting out its timeout.
    return "REJECT --reject-with " + ("icmp-admin-prohibited" if version == 4 else "icmp6-adm-prohibited")


def main(argv: Sequence[str] | None = None) -> int:
    """Print the ruleset for one IP version; the DinD entrypoint pipes it into iptables-restore."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ip-version", type=int, choices=(4, 6), default=4)
    parser.add_argument("--bridge", default="docker0", help="the inner daemon's bridge (dockerd --bridge)")
    parser.add_argument("--allow", default="", help="ranges tools may reach although private, e.g. 10.20.0.0/16")
    parser.add_argument("--deny", default="", help="more ranges to fence off, e.g. a managed Redis's address")
    args = parser.parse_args(argv)
    try:
        policy = EgressPolicy(args.bridge, parse_networks(args.allow), parse_networks(args.deny))
        sys.stdout.write(ruleset(policy, args.ip_version))
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
