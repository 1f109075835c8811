"""Scope entries: canonicalised when added, refused with a reason when they would open more than the tenant owns."""

from __future__ import annotations

import pytest

from tasks.errors import ScopeEntryError
from tasks.scope.entry import parse


def canonical(text: str, max_prefix_v4: int = 16, max_prefix_v6: int = 48) -> str:
    """The canonical text of an entry, with the default widest networks."""
    return str(parse(text, max_prefix_v4=max_prefix_v4, max_prefix_v6=max_prefix_v6))


def refusal(text: str, **widest: int) -> str:
    with pytest.raises(ScopeEntryError) as refused:
        canonical(text, **widest)
    return str(refused.value)


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("Example.COM.", "example.com"),
        ("  example.com  ", "example.com"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("BÜCHER.de.", "xn--bcher-kva.de"),
        ("XN--BCHER-KVA.DE", "xn--bcher-kva.de"),
        ("=Example.com", "=example.com"),
        ("=www.Example.com.", "=www.example.com"),
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("example.co.uk", "example.co.uk"),
        ("user.github.io", "user.github.io"),
        ("10.0.0.5/24", "10.0.0.0/24"),
        ("192.0.2.7", "192.0.2.7"),
        ("192.0.2.7/32", "192.0.2.7"),
        ("2001:DB8:0:0::1/64", "2001:db8::/64"),
        ("2001:db8::1/128", "2001:db8::1"),
        ("::ffff:192.0.2.0/120", "192.0.2.0/24"),  # an IPv4-mapped network is the IPv4 network it maps
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("日本語ドメイン.jp", "xn--eckwd4c7c5976acvb2w6i.jp"),  # kanji and katakana: one language's scripts
        ("аррӏе.com", "xn--80ak6aa92e.com"),  # noqa: RUF001 - all Cyrillic: a name of its own, not apple.com
    ],
)
def test_an_entry_is_stored_in_its_one_canonical_form(text: str, written: str) -> None:
    assert canonical(text) == written


@pytest.mark.parametrize("text", ["Example.COM.", "bücher.de", "=www.example.com", "10.0.0.5/24", "2001:db8::/48"])
def test_the_canonical_form_reads_back_as_itself(text: str) -> None:
    assert canonical(canonical(text)) == canonical(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("com", "is a public suffix"),
        ("co.uk", "is a public suffix"),
        ("github.io", "is a public suffix"),
        ("=com", "is a public suffix"),
        ("xn--p1ai", "is a public suffix"),  # .рф
        ("рф", "is a public suffix"),
        ("*.example.com", "wildcards are not entries"),
        ("*", "wildcards are not entries"),
        ("", "an empty scope entry"),
        ("   ", "an empty scope entry"),
        ("10.0.0.0/8", "is wider than /16 (TOOLRUNNER_SCOPE_MAX_PREFIX_V4)"),
        ("0.0.0.0/0", "is wider than /16 (TOOLRUNNER_SCOPE_MAX_PREFIX_V4)"),
        ("::ffff:0:0/96", "is wider than /16 (TOOLRUNNER_SCOPE_MAX_PREFIX_V4)"),
        ("2001:db8::/32", "is wider than /48 (TOOLRUNNER_SCOPE_MAX_PREFIX_V6)"),
        ("::/0", "is wider than /48 (TOOLRUNNER_SCOPE_MAX_PREFIX_V6)"),
        ("аpple.com", "the label 'аpple' mixes scripts"),  # noqa: RUF001 - a Cyrillic 'a' in a Latin name
        ("xn--pple-43d.com", "the label 'аpple' mixes scripts"),  # noqa: RUF001 - the same, written as punycode
        ("раypal.com", "mixes scripts"),  # noqa: RUF001
        ("xn--zz.com", "is not valid punycode"),
        ("bücher.de..", "not a valid internationalised domain name"),
        ("example..com", "not a host name"),
        ("127.1", "integer, octal, hex, short"),
        ("10.0.0.1-5", "integer, octal, hex, short"),
        ("017.0.0.1", "no leading zeros"),
        ("fe80::1%eth0", "zone ids"),
        ("=10.0.0.1", "integer, octal, hex, short"),
        ("example.com/24", "not a CIDR network"),
    ],
)
def test_an_entry_that_would_open_more_than_the_tenant_owns_is_refused_saying_why(text: str, says: str) -> None:
    assert says in refusal(text)


@pytest.mark.parametrize(
    ("text", "widest", "written"),
    [
        ("10.0.0.0/8", {"max_prefix_v4": 8}, "10.0.0.0/8"),
        ("2001:db8::/32", {"max_prefix_v6": 32}, "2001:db8::/32"),
        ("10.0.0.0/16", {}, "10.0.0.0/16"),
        ("2001:db8::/48", {}, "2001:db8::/48"),
    ],
)
def test_a_network_as_wide_as_the_settings_allow_is_an_entry(text: str, widest: dict[str, int], written: str) -> None:
    assert canonical(text, **widest) == written


@pytest.mark.parametrize(
    ("text", "written"),
    [("gov", "gov"), ("=co.uk", "=co.uk"), ("xn--pple-43d.com", "xn--pple-43d.com"), ("аpple.com", "xn--pple-43d.com")],  # noqa: RUF001
)
def test_unsafe_names_are_accepted_where_they_only_narrow_what_is_scanned(text: str, written: str) -> None:
    assert str(parse(text, max_prefix_v4=0, max_prefix_v6=0, unsafe_names=True)) == written
