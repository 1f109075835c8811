"""The check of a run against its tenant's scope and the operator's policy; findings marked; the scope settings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from config import Settings
from tasks.scope.check import outside
from tasks.scope.policy import checker, policy
from tasks.scope.resolve import nameserver_address, server, system
from tasks.service.findings import Finding, marked
from tasks.tools import TargetKind, load_catalogue
from tasks.tools.dnsx import DnsxParams
from tests.unit.helpers import Answers, refusal, scope_checker, scope_of, targets_spec

HOST, DOMAIN, WEB = TargetKind.HOST, TargetKind.DOMAIN, TargetKind.WEB
SCOPE = scope_of("192.0.2.0/24", "2001:db8::/48", "example.com", exclude=["192.0.2.5", "db.example.com"])


def run(*targets: str, kind: TargetKind = HOST) -> list[tuple[TargetKind, str]]:
    """The params of the fake tool: these targets, all of one kind."""
    return [(kind, target) for target in targets]


def test_a_tenant_without_a_scope_is_told_how_to_get_one() -> None:
    refused = str(refusal(targets_spec(), run("192.0.2.1"), scope_of()))
    assert "tenant acme has no scope, so it may scan nothing" in refused
    assert "`toolrunner scope add --tenant acme ENTRY...`" in refused


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("192.0.2.77", "on the deny list"),
        ("x.evil.example", "on the deny list (TOOLRUNNER_SCOPE_DENY)"),
        ("169.254.169.254", "on the deny list"),
        ("10.0.0.1", "a private, loopback or reserved address not in TOOLRUNNER_SCOPE_ALLOW_PRIVATE"),
        ("198.51.100.1", None),
        ("unknown.example.net", None),
    ],
)
def test_with_scope_off_the_deny_list_and_private_ranges_still_apply(target: str, says: str | None) -> None:
    found = refusal(targets_spec(), run(target), None, scope_checker(scope_deny=("192.0.2.0/24", "evil.example")))
    assert (found is None) == (says is None)
    assert says is None or f"{target!r}: {says}" in str(found)


def test_the_error_names_the_first_ten_refused_targets_and_counts_the_rest() -> None:
    targets = [f"198.51.100.{i}" for i in range(1, 26)]
    refused = str(refusal(targets_spec(), run("192.0.2.1", *targets), SCOPE))
    assert refused.startswith("refused: 25 target(s) outside tenant acme's scope or denied: ")
    assert [t for t in targets if f"'{t}': outside the tenant's scope" in refused] == targets[:10]
    assert "(and 15 more)" in refused and "'192.0.2.1'" not in refused
    assert refused.endswith("see `toolrunner scope show --tenant acme`")


@pytest.mark.parametrize("count", [1, 10])
def test_ten_refused_targets_or_fewer_are_all_named_with_nothing_more(count: int) -> None:
    refused = str(refusal(targets_spec(), run(*(f"198.51.100.{i}" for i in range(count))), SCOPE))
    assert f"refused: {count} target(s)" in refused and "more)" not in refused


@pytest.mark.parametrize(
    ("addresses", "says"),
    [
        (["169.254.169.254"], "www.example.com resolves to 169.254.169.254, on the deny list"),
        (["192.0.2.9", "10.0.0.1"], "www.example.com resolves to 10.0.0.1, a private, loopback or reserved address"),
        (["::ffff:127.0.0.1"], "www.example.com resolves to 127.0.0.1, a private, loopback or reserved address"),
        (["fd00:ec2::254"], "www.example.com resolves to fd00:ec2::254, on the deny list"),
        (["192.0.2.5"], "www.example.com resolves to 192.0.2.5, excluded from the tenant's scope"),
        (None, "www.example.com did not resolve within 5s at admission (timeout or server failure)"),
    ],
)
def test_a_name_in_scope_that_resolves_where_no_run_may_go_is_refused_naming_the_address(
    addresses: list[str] | None, says: str
) -> None:
    answers = Answers({"www.example.com": addresses})
    assert says in str(
        refusal(targets_spec(), run("https://www.example.com/", kind=WEB), SCOPE, scope_checker(answers))
    )


@pytest.mark.parametrize("addresses", [[], ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]])
def test_a_name_in_scope_that_resolves_to_public_addresses_or_to_none_passes(addresses: list[str]) -> None:
    answers = Answers({"www.example.com": addresses})
    assert (
        refusal(targets_spec(), run("www.example.com", "www.example.com:8443", kind=WEB), SCOPE, scope_checker(answers))
        is None
    )
    assert answers.asked == ["www.example.com"], "each name is resolved once"


def test_names_a_tool_only_asks_about_are_not_resolved() -> None:
    answers = Answers({"www.example.com": ["10.0.0.1"]})
    assert refusal(targets_spec(), run("www.example.com", kind=DOMAIN), SCOPE, scope_checker(answers)) is None
    assert answers.asked == []


def test_names_already_refused_are_not_resolved() -> None:
    answers = Answers()
    refusal(targets_spec(), run("www.example.org", "db.example.com"), SCOPE, scope_checker(answers))
    assert answers.asked == []


@pytest.mark.parametrize(
    ("allowed", "entry", "target"),
    [
        ("169.254.0.0/16", "169.254.169.0/24", "169.254.169.254"),
        ("169.254.0.0/16", "169.254.170.0/24", "169.254.170.2"),
        ("169.254.0.0/16", "169.254.1.0/24", "169.254.1.1"),  # link-local: always denied
        ("100.64.0.0/10", "100.100.0.0/16", "100.100.100.200"),
        ("168.63.0.0/16", "168.63.0.0/16", "168.63.129.16"),
        ("fc00::/7", "fd00:ec2::/48", "fd00:ec2::254"),
    ],
)
def test_cloud_metadata_is_refused_even_when_its_range_is_allowed_and_in_scope(
    allowed: str, entry: str, target: str
) -> None:
    refused = refusal(targets_spec(), run(target), scope_of(entry), scope_checker(scope_allow_private=(allowed,)))
    assert f"{target!r}: on the deny list" in str(refused)


@pytest.mark.parametrize(
    ("allowed", "target", "passes"),
    [
        ((), "10.1.2.3", False),
        (("10.0.0.0/8",), "10.1.2.3", True),
        (("10.1.0.0/17", "10.1.128.0/17"), "10.1.0.0/16", True),  # allowed ranges merge like any others
        (("10.1.0.0/17",), "10.1.0.0/16", False),  # partly allowed is not allowed
        (("10.0.0.0/8",), "10.2.0.1", False),  # allowed, but not in the tenant's scope
    ],
)
def test_a_private_range_is_scanned_only_when_the_operator_allows_it_and_the_scope_holds_it(
    allowed: tuple[str, ...], target: str, passes: bool
) -> None:
    found = refusal(targets_spec(), run(target), scope_of("10.1.0.0/16"), scope_checker(scope_allow_private=allowed))
    assert (found is None) is passes


@pytest.mark.parametrize(
    ("resolvers", "allowed", "passes"),
    [
        (("9.9.9.9", "udp:1.1.1.1:53"), None, True),  # the default list: the public resolvers
        (("192.0.2.53",), None, False),
        (("192.0.2.53:5353",), ("192.0.2.53",), True),
        (("[2001:db8::53]:53",), ("2001:db8::/48",), True),
        (("169.254.169.253",), ("169.254.169.253",), False),  # the deny list wins over the resolvers setting
    ],
)
def test_a_dnsx_resolver_must_be_one_the_operator_allows(
    resolvers: tuple[str, ...], allowed: tuple[str, ...] | None, passes: bool
) -> None:
    overrides: dict[str, Any] = {} if allowed is None else {"scope_resolvers": allowed}
    params = DnsxParams(domains=("example.com",), resolvers=resolvers)
    found = refusal(load_catalogue()["dnsx"], params, SCOPE, scope_checker(**overrides))
    assert (found is None) is passes
    assert found is None or "not a resolver the operator allows (TOOLRUNNER_SCOPE_RESOLVERS)" in found


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("192.0.2.5", "excluded from the tenant's scope"),
        ("192.0.2.0/28", "excluded from the tenant's scope"),
        ("db.example.com", "excluded from the tenant's scope"),
        ("a.db.example.com", "excluded from the tenant's scope"),
        ("192.0.2.6", None),
    ],
)
def test_exclusions_win_over_inclusions(target: str, says: str | None) -> None:
    found = refusal(targets_spec(), run(target), SCOPE)
    assert found is None if says is None else f"{target!r}: {says}" in str(found)


# --- findings ------------------------------------------------------------------------------------------------------

FINDINGS: list[tuple[Finding, bool]] = [
    ({"url": "https://www.example.com/admin", "status": 200}, False),
    ({"url": "http://evil.example/", "status": 200}, True),
    ({"url": "http://a@www.example.com/", "status": 200}, True),  # unreadable: counted as outside
    ({"url": "http://10.0.0.1/", "status": 200}, True),
    ({"url": "http://192.0.2.5/", "status": 200}, True),
    ({"url": None, "host": "192.0.2.9"}, False),  # the fields present decide
    ({"url": "http://10.0.0.1/", "host": "192.0.2.9"}, False),  # one field in scope is enough (nmap: name, address)
    ({"url": "http://10.0.0.1/", "host": "198.51.100.1"}, True),
    ({"url": "", "host": "198.51.100.1"}, True),
    ({"url": "https://[2001:db8::1]:8443/", "host": "evil.example"}, False),
    ({"status": 200}, False),  # no host at all: nothing to mark
]


def parse_all(outputs: Any) -> Iterator[Finding]:
    yield from (dict(finding) for finding, _ in FINDINGS)


def test_exactly_the_findings_about_hosts_outside_the_scope_are_marked_and_the_rest_carry_no_mark() -> None:
    parse = marked(parse_all, ("url", "host"), outside(SCOPE, scope_checker().policy))
    found = list(parse({}))
    assert [finding.get("out_of_scope") for finding in found] == [True if out else None for _, out in FINDINGS]
    assert [{k: v for k, v in f.items() if k != "out_of_scope"} for f in found] == [f for f, _ in FINDINGS]


@pytest.mark.parametrize(("fields", "predicate"), [(("url",), None), ((), outside(SCOPE, scope_checker().policy))])
def test_without_a_scope_or_host_fields_the_parser_is_left_as_it_is(fields: tuple[str, ...], predicate: Any) -> None:
    assert marked(parse_all, fields, predicate) is parse_all


# --- settings ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("TOOLRUNNER_SCOPE_DENY", "scope_deny"),
        ("TOOLRUNNER_SCOPE_ALLOW_PRIVATE", "scope_allow_private"),
        ("TOOLRUNNER_SCOPE_RESOLVERS", "scope_resolvers"),
    ],
)
@pytest.mark.parametrize(
    ("value", "items"),
    [("192.0.2.0/24, 198.51.100.7 ,", ("192.0.2.0/24", "198.51.100.7")), ("192.0.2.1", ("192.0.2.1",)), ("", ())],
)
def test_a_scope_list_setting_is_read_from_a_comma_separated_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, field: str, value: str, items: tuple[str, ...]
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(Settings(), field) == items


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("scope_deny", ("example.com", "127.1"), "TOOLRUNNER_SCOPE_DENY: '127.1' reads as an IPv4 address"),
        ("scope_deny", ("*.example.com",), "TOOLRUNNER_SCOPE_DENY: '*.example.com': wildcards"),
        ("scope_allow_private", ("10.0.0.0/33",), "TOOLRUNNER_SCOPE_ALLOW_PRIVATE: '10.0.0.0/33': prefix length"),
        ("scope_allow_private", ("example.com",), "TOOLRUNNER_SCOPE_ALLOW_PRIVATE: 'example.com' is not an address"),
        ("scope_resolvers", ("1.1.1.1:53",), "TOOLRUNNER_SCOPE_RESOLVERS: '1.1.1.1:53' is not an IPv6 address"),
        ("scope_resolvers", ("fe80::1%eth0",), "TOOLRUNNER_SCOPE_RESOLVERS: 'fe80::1%eth0': IPv6 zone ids"),
    ],
)
def test_a_malformed_item_of_a_scope_setting_fails_when_the_policy_is_built_naming_the_setting(
    field: str, value: tuple[str, ...], says: str
) -> None:
    settings = Settings(**{field: value})
    with pytest.raises(ValueError) as failed:
        policy(settings)
    assert says in str(failed.value)


@pytest.mark.parametrize("value", ["dns.google", "192.0.2.53:0", "[2001:db8::53", "[2001:db8::53]x", "192.0.2.53:"])
def test_a_malformed_admission_resolver_fails_when_the_checker_is_built_naming_the_setting(value: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"TOOLRUNNER_SCOPE_RESOLVER: {value!r}")):
        checker(Settings(scope_resolver=value))


def test_the_deny_list_may_name_a_public_suffix() -> None:
    deny_gov = scope_checker(scope_deny=("gov",))
    assert "on the deny list" in str(refusal(targets_spec(), run("www.whitehouse.gov"), None, deny_gov))


@pytest.mark.parametrize(
    ("text", "server_address"),
    [
        ("192.0.2.53", ("192.0.2.53", 53)),
        ("192.0.2.53:5353", ("192.0.2.53", 5353)),
        ("2001:db8::53", ("2001:db8::53", 53)),
        ("[2001:db8::53]", ("2001:db8::53", 53)),
        ("[2001:db8::53]:5353", ("2001:db8::53", 5353)),
    ],
)
def test_the_admission_resolver_is_an_address_and_an_optional_port(text: str, server_address: tuple[str, int]) -> None:
    assert nameserver_address(text) == server_address
    assert callable(server(text))


def test_the_system_resolver_answers_localhost_with_loopback_addresses() -> None:
    found = system(["localhost"], 5)["localhost"]
    assert found and {str(address) for address in found} <= {"127.0.0.1", "::1"}
