"""Targets as the tools read them: every tool's declared targets, and the attacker's spellings refused or unwrapped."""

from __future__ import annotations

from typing import Any

import pytest

from tasks.errors import TargetError
from tasks.scope.host import read
from tasks.tools import TargetKind, ToolParams, load_catalogue
from tasks.tools.ffuf import FfufParams
from tests.unit.helpers import refusal, scope_of, targets_spec

HOST, DOMAIN, WEB, URL, RESOLVER = (
    TargetKind.HOST, TargetKind.DOMAIN, TargetKind.WEB, TargetKind.URL, TargetKind.RESOLVER,
)  # fmt: skip
CATALOGUE = load_catalogue()
SCOPE = scope_of("192.0.2.0/24", "2001:db8::/48", "example.com")

# For each tool: params, and every (kind, text) they send it to, in order.
TOOL_TARGETS: dict[str, tuple[dict[str, Any], list[tuple[TargetKind, str]]]] = {
    "dnsx": (
        {"domains": ["example.com", "_dmarc.example.com"], "resolvers": ["1.1.1.1", "udp:8.8.8.8:53"]},
        [(DOMAIN, "example.com"), (DOMAIN, "_dmarc.example.com"), (RESOLVER, "1.1.1.1"), (RESOLVER, "udp:8.8.8.8:53")],
    ),
    "ffuf": ({"url": "https://example.com/FUZZ", "wordlist": ["admin", "login"]}, [(URL, "https://example.com/fuzz")]),
    "httpx": (
        {"targets": ["example.com", "example.com:8443", "https://www.example.com/login", "192.0.2.1"]},
        [(WEB, "example.com"), (WEB, "example.com:8443"), (WEB, "https://www.example.com/login"), (WEB, "192.0.2.1")],
    ),
    "naabu": (
        {"hosts": ["192.0.2.1", "192.0.2.0/28", "www.example.com"], "ports": "80"},
        [(HOST, "192.0.2.1"), (HOST, "192.0.2.0/28"), (HOST, "www.example.com")],
    ),
    "nmap": (
        {"targets": ["192.0.2.1", "2001:db8::/120", "scanme.example.com"], "top_ports": 10},
        [(HOST, "192.0.2.1"), (HOST, "2001:db8::/120"), (HOST, "scanme.example.com")],
    ),
    "nuclei": (
        {"targets": ["https://example.com", "192.0.2.1:8080"]},
        [(WEB, "https://example.com"), (WEB, "192.0.2.1:8080")],
    ),
    "subfinder": (
        {"domains": ["example.com", "dev.example.com"]},
        [(DOMAIN, "example.com"), (DOMAIN, "dev.example.com")],
    ),
    "whatweb": (
        {"targets": ["https://example.com/", "http://192.0.2.1:8080/login"]},
        [(URL, "https://example.com/"), (URL, "http://192.0.2.1:8080/login")],
    ),
    "sslscan": (
        {"targets": ["example.com", "www.example.com:8443", "192.0.2.1:443"]},
        [(HOST, "example.com"), (HOST, "www.example.com"), (HOST, "192.0.2.1")],
    ),
    "gobuster": ({"url": "https://example.com/app", "wordlist": ["admin"]}, [(URL, "https://example.com/app")]),
    "sqlmap": (
        {"targets": ["https://example.com/item?id=1", "http://192.0.2.1:8080/q?a=1&b=2"]},
        [(URL, "https://example.com/item?id=1"), (URL, "http://192.0.2.1:8080/q?a=1&b=2")],
    ),
    "wafw00f": (
        {"targets": ["https://example.com/", "http://192.0.2.1:8080/"]},
        [(URL, "https://example.com/"), (URL, "http://192.0.2.1:8080/")],
    ),
}


def test_the_table_of_target_kinds_covers_every_tool_of_the_catalogue() -> None:
    assert sorted(TOOL_TARGETS) == sorted(CATALOGUE)


@pytest.mark.parametrize("tool", sorted(TOOL_TARGETS))
def test_each_tool_names_every_place_its_params_send_it_with_the_kind_it_reads_it_as(tool: str) -> None:
    spec = CATALOGUE[tool]
    given, expected = TOOL_TARGETS[tool]
    assert spec.targets is not None
    assert list(spec.targets(spec.params_model.model_validate(given))) == expected


@pytest.mark.parametrize("tool", sorted(TOOL_TARGETS))
def test_each_tool_with_network_access_declares_targets_and_its_sample_run_is_in_scope(tool: str) -> None:
    spec = CATALOGUE[tool]
    assert spec.network is None, "tools take TOOLRUNNER_TOOL_NETWORK (bridge by default)"
    assert refusal(spec, spec.params_model.model_validate(TOOL_TARGETS[tool][0]), SCOPE) is None


def fuzz_host(url: str, *words: str, extensions: tuple[str, ...] = ()) -> FfufParams:
    return FfufParams(url=url, wordlist=words, extensions=extensions, fuzz_host=True)


def test_ffuf_with_fuzz_host_checks_the_url_each_word_and_each_word_plus_extension_makes() -> None:
    params = fuzz_host("https://FUZZ.example.com/", "www", "api", "www", extensions=("php",))
    assert list(CATALOGUE["ffuf"].targets(params)) == [  # type: ignore[misc]
        (URL, "https://www.example.com/"), (URL, "https://www.php.example.com/"),
        (URL, "https://api.example.com/"), (URL, "https://api.php.example.com/"),
    ]  # fmt: skip


def test_ffuf_with_fuzz_host_but_fuzz_only_in_the_path_checks_the_url_once() -> None:
    params = fuzz_host("https://example.com/FUZZ", "a", "b")
    assert list(CATALOGUE["ffuf"].targets(params)) == [(URL, "https://example.com/fuzz")]  # type: ignore[misc]


@pytest.mark.parametrize(("follow", "wanders"), [(True, True), (False, False)])
def test_ffuf_following_redirects_is_reported_as_wandering(follow: bool, wanders: bool) -> None:
    params = FfufParams(url="https://example.com/FUZZ", wordlist=("a",), follow_redirects=follow)
    why = CATALOGUE["ffuf"].wanders(params)  # type: ignore[misc]
    assert (why is not None) == wanders
    assert why is None or "follow_redirects" in why


def test_ffuf_following_redirects_is_refused_while_scope_is_enforced_and_allowed_when_it_is_off() -> None:
    spec, params = CATALOGUE["ffuf"], FfufParams(url="https://example.com/FUZZ", wordlist=("a",), follow_redirects=True)
    assert "'params': follow_redirects: ffuf follows redirects to any host" in str(refusal(spec, params, SCOPE))
    assert refusal(spec, params, None) is None


def test_a_tool_with_network_access_and_no_declared_targets_is_refused() -> None:
    refused = refusal(targets_spec(declares_targets=False), ToolParams(), SCOPE, network="bridge")
    assert "tool fake has network access (bridge) but declares no targets" in str(refused)


def test_a_tool_without_network_access_needs_no_declared_targets() -> None:
    assert refusal(targets_spec(declares_targets=False), ToolParams(), SCOPE, network="none") is None


# --- the attacker's spellings --------------------------------------------------------------------------------------

SHORT_FORMS = "integer, octal, hex, short or nmap's range syntax"


@pytest.mark.parametrize(
    ("kind", "text", "says"),
    [
        (URL, "http://good.example.com@evil.example/", "user info"),
        (WEB, "2001:db8::1:80", "in brackets"),  # Go's URL parser: host 2001:db8::1, port 80
        (WEB, "good.example.com@evil.example", "user info"),
        (URL, "http://ev%69l.example/", "percent-encoding"),
        (URL, "http://evil.example%2f.example.com/", "percent-encoding"),
        (URL, "http://evil.example\\.example.com/", "backslashes"),
        (WEB, "http://example.com\\@evil.example/", "backslashes"),
        (HOST, "2130706433", SHORT_FORMS),
        (HOST, "0177.0.0.1", SHORT_FORMS),
        (HOST, "0x7f.0.0.1", SHORT_FORMS),
        (HOST, "0x7f000001", SHORT_FORMS),
        (HOST, "127.1", SHORT_FORMS),
        (HOST, "127.0.1", SHORT_FORMS),
        (WEB, "http://2130706433/", SHORT_FORMS),
        (URL, "http://127.1:8080/", SHORT_FORMS),
        (HOST, "017.0.0.1", "no leading zeros"),
        (HOST, "127.0.0.1.", SHORT_FORMS),
        (HOST, "10.0.0.1-5", SHORT_FORMS),
        (HOST, "10.0.0.*", SHORT_FORMS),
        (HOST, "10.0.0.1,2", SHORT_FORMS),
        (HOST, "10.0.0-3.1", SHORT_FORMS),
        (HOST, "fe80::1%eth0", "zone ids"),
        (HOST, "fe80::1%eth0/64", "zone ids"),
        (WEB, "http://[fe80::1%25eth0]/", "percent-encoding"),
        (HOST, "\u212aevil.example", "not a host name"),  # the Kelvin sign, which lower() folds into 'k'
        (HOST, "bücher.example", "IDNs as punycode"),
        (HOST, "example.com/24", "not a CIDR network"),
        (HOST, "192.0.2.0/33", "out of range"),
        (WEB, "http://2001:db8::1:80/", "in brackets"),
        (WEB, "[2001:db8::1]x", "bracketed IPv6 host"),
        (WEB, "example.com:0", "1-65535"),
        (URL, "http://example.com:65536/", "1-65535"),
        (URL, "ftp://example.com/", "only http and https"),
        (URL, "example.com/FUZZ", "absolute"),
        (RESOLVER, "dns.google", "must be an address"),
        (HOST, "AS14421", "reads as an AS number"),  # naabu, httpx and nuclei expand it to the AS's networks
        (WEB, "as14421", "reads as an AS number"),
        (WEB, "example.com/admin", "the prefix length after"),  # without a scheme, a "/" makes a network line
    ],
)
def test_an_ambiguous_or_smuggling_target_is_refused_saying_why(kind: TargetKind, text: str, says: str) -> None:
    with pytest.raises(TargetError) as refused:
        read(kind, text)
    assert says in str(refused.value)


@pytest.mark.parametrize(
    ("kind", "text", "reads_as"),
    [
        (HOST, "::ffff:127.0.0.1", "127.0.0.1/32"),  # IPv4-mapped: checked as the loopback address it is
        (HOST, "::ffff:7f00:1", "127.0.0.1/32"),
        (HOST, "::127.0.0.1", "127.0.0.1/32"),  # IPv4-compatible (deprecated)
        (HOST, "::ffff:10.0.0.0/104", "10.0.0.0/8"),
        (WEB, "http://[::ffff:169.254.169.254]/latest", "169.254.169.254/32"),
        (HOST, "::1", "::1/128"),
        (HOST, "::", "::/128"),
        (HOST, "10.0.0.5/24", "10.0.0.0/24"),
        (HOST, "Example.COM.", "example.com"),
        (WEB, "HTTPS://WWW.Example.COM.:8443/x", "www.example.com"),
        (WEB, "[2001:DB8::1]:443", "2001:db8::1/128"),
        (HOST, "64:ff9b::a9fe:a9fe", "169.254.169.254/32"),  # NAT64's well-known prefix reaches that IPv4
        (HOST, "2002:a9fe:a9fe::1", "169.254.169.254/32"),  # and 6to4 embeds one
        (HOST, "64:ff9b::/96", "64:ff9b::/96"),  # their networks stay IPv6 (private: refused unless allowed)
        (HOST, "2002:a9fe:a9fe::/48", "2002:a9fe:a9fe::/48"),
        (WEB, "192.0.2.0/24", "192.0.2.0/24"),  # httpx and nuclei scan every address of a network line
        (WEB, "2001:db8::/120", "2001:db8::/120"),
        (HOST, "as14421.example.com", "as14421.example.com"),
        (WEB, "http://evil.example#@good.example/", "evil.example"),  # where the tools send it, not where it seems
        (WEB, "http://evil.example?@good.example/", "evil.example"),
        (URL, "https://example.com/a\\b?c=%41", "example.com"),  # after the authority, nothing is refused
        (DOMAIN, "_dmarc.Example.com", "_dmarc.example.com"),
        (RESOLVER, "udp:1.1.1.1:53", "1.1.1.1/32"),
        (RESOLVER, "[2606:4700:4700::1111]:53", "2606:4700:4700::1111/128"),
    ],
)
def test_a_target_is_read_as_the_one_host_the_tool_contacts(kind: TargetKind, text: str, reads_as: str) -> None:
    assert str(read(kind, text)) == reads_as


@pytest.mark.parametrize(
    ("kind", "text", "says"),
    [
        (HOST, "::ffff:127.0.0.1", "a private, loopback or reserved address"),
        (HOST, "::ffff:169.254.169.254", "on the deny list"),
        (HOST, "192.0.2.0/23", "partly outside the tenant's scope"),
        (WEB, "192.0.2.0/23", "partly outside the tenant's scope"),
        (HOST, "198.51.100.7", "outside the tenant's scope"),
        (WEB, "http://xn--80ak6aa92e.com/", "outside the tenant's scope"),  # apple.com's all-Cyrillic lookalike
        (WEB, "http://example.com.evil.example/", "outside the tenant's scope"),
        (WEB, "http://good.example.com@evil.example/", "user info"),
    ],
)
def test_the_check_refuses_an_attacker_spelling_naming_it_and_why(kind: TargetKind, text: str, says: str) -> None:
    refused = refusal(targets_spec(), [(kind, text)], scope_of("192.0.2.0/24", "example.com", "apple.com"))
    assert f"{text!r}: {says}" in str(refused)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (HOST, "::ffff:192.0.2.7"),
        (WEB, "WWW.Example.COM."),
        (URL, "HTTP://[::ffff:c000:207]:80/"),
        (HOST, "192.0.2.5/26"),
    ],
)
def test_the_check_accepts_any_unambiguous_spelling_of_a_host_in_scope(kind: TargetKind, text: str) -> None:
    assert refusal(targets_spec(), [(kind, text)], scope_of("192.0.2.0/24", "example.com")) is None


@pytest.mark.parametrize(
    ("url", "good", "word", "says"),
    [
        ("http://FUZZ.example.com/", "www", "evil.example/", "'http://evil.example/.example.com/': outside the"),
        ("http://FUZZ.example.com/", "www", "evil.example#", "'http://evil.example#.example.com/': outside the"),
        ("http://FUZZ.example.com/", "www", "x@evil.example", "'http://x@evil.example.example.com/': user info"),
        ("http://www.example.com:FUZZ/", "8080", ":80@evil.example", "'http://www.example.com::80@evil.example/'"),
        ("http://www.example.com:FUZZ/", "8080", "80@evil.example", "'http://www.example.com:80@evil.example/': user"),
        ("http://FUZZ/", "www.example.com", "127.0.0.1", "'http://127.0.0.1/': a private, loopback or reserved"),
    ],
)
def test_an_ffuf_word_that_would_move_the_host_is_refused_as_the_url_it_makes(
    url: str, good: str, word: str, says: str
) -> None:
    refused = str(refusal(CATALOGUE["ffuf"], fuzz_host(url, good, word), scope_of("example.com")))
    assert says in refused
    assert "refused: 1 target(s)" in refused, "the word that keeps the host in scope is not refused"
