"""TOOLRUNNER_SCOPE_RESOLVER is read once, when the checker is built: every way to write a DNS server's address
works, and anything else fails there, naming the setting, never at each run's lookup."""

from __future__ import annotations

import pytest

from config import Settings
from tasks.scope.policy import checker
from tasks.scope.resolve import nameserver_address


@pytest.mark.parametrize(
    ("written", "server"),
    [
        ("192.0.2.53", ("192.0.2.53", 53)),
        ("192.0.2.53:5353", ("192.0.2.53", 5353)),
        ("2001:db8::53", ("2001:db8::53", 53)),
        ("[2001:db8::53]", ("2001:db8::53", 53)),
        ("[2001:db8::53]:5353", ("2001:db8::53", 5353)),
    ],
)
def test_a_dns_server_is_read_with_or_without_a_port_and_ipv6_in_brackets(
    written: str, server: tuple[str, int]
) -> None:
    assert nameserver_address(written) == server


@pytest.mark.parametrize(
    "written", ["resolver.example", "192.0.2.53:", "192.0.2.53:0", "192.0.2.53:65536", "192.0.2.53:+53", "[::1]53"]
)
def test_anything_else_is_refused_when_the_checker_is_built_naming_the_setting(written: str) -> None:
    with pytest.raises(ValueError, match=r"^TOOLRUNNER_SCOPE_RESOLVER: "):
        checker(Settings(scope_resolver=written))
