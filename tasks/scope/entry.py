"""Scope entries: what an operator may write, canonicalised when added and refused with a reason when unsafe.

An entry is an address (`192.0.2.7`), a CIDR network (`192.0.2.0/24`, `2001:db8::/48`), a domain with its
subdomains (`example.com`) or one name alone (`=example.com`). Pure.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache

import idna
from publicsuffixlist import PublicSuffixList

from tasks.errors import ScopeEntryError as EntryError
from tasks.errors import TargetError
from tasks.scope.host import Network, Span, address_span, as_network, name, network_span

EXACT = "="


@dataclass(frozen=True)
class Entry:
    """One canonical scope entry: a network (as host.py's span), or a domain covering its subdomains unless `exact`."""

    span: Span | None = None
    domain: str | None = None
    exact: bool = False

    @property
    def network(self) -> Network | None:
        """The entry's network, or None for a domain."""
        return None if self.span is None else as_network(self.span)

    def __str__(self) -> str:
        found = self.network
        if found is not None:
            return str(found.network_address) if found.prefixlen == found.max_prefixlen else str(found)
        return f"{EXACT if self.exact else ''}{self.domain}"


@cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the list ships inside the package: no network at start


def parse(text: str, *, max_prefix_v4: int, max_prefix_v6: int, unsafe_names: bool = False) -> Entry:
    """The canonical entry text stands for; EntryError says why it cannot be one.

    `unsafe_names` accepts public suffixes and mixed-script labels: for lists that only ever narrow what may be
    scanned (the operator's deny list, a tenant's stored exclusions), where refusing them would widen it.
    """
    raw = text.strip()
    if not raw:
        raise EntryError("an empty scope entry")
    if "*" in raw:
        raise EntryError(f"{raw!r}: wildcards are not entries; 'example.com' already covers every subdomain")
    if raw.startswith(EXACT):
        return Entry(domain=_domain(raw[1:], raw, unsafe_names), exact=True)
    try:
        found = network_span(raw) if "/" in raw else address_span(raw)
    except TargetError as exc:
        raise EntryError(str(exc)) from None
    if found is None:
        return Entry(domain=_domain(raw, raw, unsafe_names))
    return Entry(span=_narrow_enough(found, raw, max_prefix_v4, max_prefix_v6))


def _narrow_enough(found: Span, raw: str, max_prefix_v4: int, max_prefix_v6: int) -> Span:
    version, first, last = found
    limit, setting, bits = (max_prefix_v4, "V4", 32) if version == 4 else (max_prefix_v6, "V6", 128)
    if bits - (last - first).bit_length() < limit:
        raise EntryError(
            f"{raw!r} is wider than /{limit} (TOOLRUNNER_SCOPE_MAX_PREFIX_{setting}): add narrower networks"
        )
    return found


def _domain(text: str, raw: str, unsafe_names: bool) -> str:
    """A domain in ASCII (IDNs as punycode), lower case, no trailing dot; no mixed-script label, no public suffix."""
    ascii_text = text if text.isascii() else _punycode(text, raw)
    try:
        domain = name(ascii_text)
    except TargetError as exc:
        raise EntryError(str(exc)) from None
    if unsafe_names:
        return domain
    if "xn--" in domain:  # only punycode labels can mix scripts (name() refused anything else not ASCII)
        labels = [_unicode(label, raw) for label in domain.split(".")]  # punycode written as such is checked too
        if mixed := next((label for label in labels if _mixes_scripts(label)), None):
            raise EntryError(f"{raw!r}: the label {mixed!r} mixes scripts, as a homograph of another name would")
    if _suffixes().is_public(domain):
        raise EntryError(
            f"{raw!r} is a public suffix (anyone can register under it): add the domain the tenant owns, "
            "such as example.com or example.co.uk"
        )
    return domain


def _punycode(text: str, raw: str) -> str:
    try:
        return idna.encode(text, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise EntryError(f"{raw!r} is not a valid internationalised domain name: {exc}") from None


def _unicode(label: str, raw: str) -> str:
    """A label as Unicode: an A-label (xn--) decoded, refused when it is no valid punycode."""
    if not label.startswith("xn--"):
        return label
    try:
        return idna.decode(label)
    except (idna.IDNAError, UnicodeError) as exc:
        raise EntryError(f"{raw!r}: {label!r} is not valid punycode: {exc}") from None


# Scripts one language writes together (UTS #39's "highly restrictive" sets, without Latin): not a homograph.
_SCRIPT_SETS = (
    frozenset({"CJK", "IDEOGRAPHIC", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA"}),  # Japanese
    frozenset({"CJK", "IDEOGRAPHIC", "HANGUL"}),  # Korean
    frozenset({"CJK", "IDEOGRAPHIC", "BOPOMOFO"}),  # Chinese
)


def _mixes_scripts(label: str) -> bool:
    if label.isascii():  # every ASCII letter is LATIN (and this is nearly every label: no need to look one by one)
        return False
    scripts = _scripts(label)
    return len(scripts) > 1 and not any(scripts <= allowed for allowed in _SCRIPT_SETS)


def _scripts(label: str) -> set[str]:
    """The scripts of a label's letters (LATIN, CYRILLIC, GREEK...), by their Unicode names."""
    return {unicodedata.name(c, "UNKNOWN").split()[0] for c in label if c.isalpha()}
