"""config/egress.py: the tools' egress fence, read back rule by rule (iptables-restore checks it in integration)."""

from __future__ import annotations

import ipaddress

import pytest

from config.egress import BLOCKED, EGRESS_CHAIN, METADATA, EgressPolicy, main, parse_networks, ruleset


def egress_rules(text: str) -> list[tuple[str, str]]:
    """(destination, target) of each rule of the egress chain, in order; "*" for a rule without -d."""
    rules = []
    for line in text.splitlines():
        words = line.split()
        if words[:2] == ["-A", EGRESS_CHAIN]:
            destination = words[words.index("-d") + 1] if "-d" in words else "*"
            rules.append((destination, words[words.index("-j") + 1]))
    return rules


def new_connection_verdict(text: str, address: str) -> str:
    """The verdict for a new connection: the conntrack rule (first, no -d) matches only established ones."""
    ip = ipaddress.ip_address(address)
    for destination, target in egress_rules(text)[1:]:
        if destination == "*" or ip in ipaddress.ip_network(destination):
            return target
    raise AssertionError("the chain has no final rule")


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "172.17.0.1", "172.18.0.5", "192.168.1.1", "169.254.169.254", "169.254.170.2", "100.100.100.200",
     "127.0.0.1", "100.64.0.1", "224.0.0.251", "0.0.0.0", "168.63.129.16"],
)  # fmt: skip
def test_a_tool_cannot_open_a_connection_to_a_private_link_local_or_metadata_address(address: str) -> None:
    assert new_connection_verdict(ruleset(EgressPolicy(), 4), address) == "REJECT"


@pytest.mark.parametrize(
    "address",
    ["::1", "fd00:ec2::254", "fe80::1", "fc00::5", "::ffff:10.0.0.1", "64:ff9b::a00:1",
     "64:ff9b:1::a00:1", "2002:a00:1::1", "2002:a9fe:a9fe::1"],
)  # fmt: skip
def test_ipv6_private_link_local_metadata_and_v4_mapped_addresses_are_rejected(address: str) -> None:
    assert new_connection_verdict(ruleset(EgressPolicy(), 6), address) == "REJECT"


@pytest.mark.parametrize(("version", "address"), [(4, "93.184.216.34"), (4, "8.8.8.8"), (6, "2606:4700::1111")])
def test_a_public_address_is_reachable(version: int, address: str) -> None:
    assert new_connection_verdict(ruleset(EgressPolicy(), version), address) == "RETURN"


def test_an_allow_listed_private_range_is_reachable_and_its_neighbours_are_not() -> None:
    text = ruleset(EgressPolicy(allow=parse_networks("10.20.0.0/16")), 4)
    assert new_connection_verdict(text, "10.20.3.4") == "RETURN"
    assert new_connection_verdict(text, "10.21.0.1") == "REJECT"


def test_allow_listing_link_local_never_opens_the_metadata_addresses() -> None:
    text = ruleset(EgressPolicy(allow=parse_networks("169.254.0.0/16, 100.64.0.0/10, 168.63.0.0/16")), 4)
    assert new_connection_verdict(text, "169.254.169.254") == "REJECT"
    assert new_connection_verdict(text, "100.100.100.200") == "REJECT"
    assert new_connection_verdict(text, "168.63.129.16") == "REJECT"
    assert new_connection_verdict(text, "168.63.129.17") == "RETURN"
    assert new_connection_verdict(text, "169.254.1.1") == "RETURN"


def test_a_denied_public_address_is_rejected_even_when_also_allow_listed() -> None:
    text = ruleset(EgressPolicy(allow=parse_networks("203.0.113.0/24"), deny=parse_networks("203.0.113.7")), 4)
    assert new_connection_verdict(text, "203.0.113.7") == "REJECT"
    assert new_connection_verdict(text, "203.0.113.8") == "RETURN"


def test_replies_to_allowed_connections_pass_before_any_destination_rule() -> None:
    first = next(line for line in ruleset(EgressPolicy(), 4).splitlines() if line.startswith(f"-A {EGRESS_CHAIN}"))
    assert first == f"-A {EGRESS_CHAIN} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"


def test_the_fence_applies_to_the_tools_bridge_only_and_covers_the_daemons_own_ports() -> None:
    lines = ruleset(EgressPolicy(bridge="tools0"), 4).splitlines()
    assert "-A DOCKER-USER -i tools0 -j TOOLRUNNER-EGRESS" in lines
    assert "-A INPUT -i tools0 -j TOOLRUNNER-INPUT" in lines
    assert lines[-1] == "COMMIT"


def test_each_family_gets_only_its_own_addresses() -> None:
    v4, v6 = ruleset(EgressPolicy(), 4), ruleset(EgressPolicy(), 6)
    assert all(":" not in d for d, _ in egress_rules(v4) if d != "*")
    assert all(":" in d for d, _ in egress_rules(v6) if d != "*")
    assert len(egress_rules(v4)) + len(egress_rules(v6)) == 2 * 2 + len(BLOCKED) + len(METADATA)


@pytest.mark.parametrize("text", ["10.1.2.3/8", "not-an-address", "10.0.0.0/33"])
def test_a_malformed_range_is_refused_rather_than_guessed(text: str) -> None:
    with pytest.raises(ValueError):
        parse_networks(text)


@pytest.mark.parametrize("bridge", ["docker0; rm", "a" * 16, ""])
def test_an_interface_name_that_is_not_one_is_refused(bridge: str) -> None:
    with pytest.raises(ValueError):
        ruleset(EgressPolicy(bridge=bridge), 4)


def test_the_command_line_prints_the_ruleset_and_rejects_a_bad_allow_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--ip-version", "6", "--allow", "fd12::/64"]) == 0
    assert "-A TOOLRUNNER-EGRESS -d fd12::/64 -j RETURN" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--allow", "10.1.2.3/8"])
