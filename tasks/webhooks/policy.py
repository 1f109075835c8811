"""Where a webhook may go: its URL (https unless plain http is allowed), and each address its name resolves to
(pure).

An address is checked at every attempt, and the attempt connects to that very address (tasks/webhooks/sender.py):
a name that resolves to a public address at one moment and to 127.0.0.1 the next (DNS rebinding) is checked as it
is used. The deny list is the scope's (tasks/scope/policy.py: cloud metadata, link-local, TOOLRUNNER_SCOPE_DENY)
and its private ranges (loopback, RFC 1918, reserved); TOOLRUNNER_WEBHOOK_ALLOW_NETWORKS opens parts of them,
except cloud metadata: never.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from config.egress import METADATA
from tasks.errors import WebhookConfigError
from tasks.scope.matcher import Policy, Ranges, address_network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2048
_METADATA = Ranges(address_network(cidr) for cidr, _ in METADATA)


@dataclass(frozen=True)
class Target:
    """A webhook URL taken apart: how to reach it and what to ask for."""

    url: str
    scheme: str
    host: str  # the name (or literal address) the URL gives: the TLS server name and the Host header
    port: int
    path: str  # path and query, as sent in the request line


def target(url: str, *, allow_http: bool) -> Target:
    """The URL read and checked: https (http only when allowed), a host, no credentials, no fragment."""
    if len(url) > MAX_URL_LENGTH or any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise WebhookConfigError("a webhook URL must be one line of at most 2048 characters")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not allow_http):
        raise WebhookConfigError(
            "a webhook URL must be https:// (http:// only with TOOLRUNNER_WEBHOOK_ALLOW_HTTP=true)"
        )
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise WebhookConfigError("a webhook URL may not carry credentials or a fragment")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookConfigError("a webhook URL's port must be a number from 1 to 65535") from None
    if not parts.hostname:
        raise WebhookConfigError("a webhook URL must name a host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url, parts.scheme, parts.hostname, port, path)


@dataclass(frozen=True)
class AddressPolicy:
    """The scope's deny list and private ranges, with the operator's webhook allowance."""

    scope: Policy
    allow: Ranges

    def refusal(self, found: Address) -> str | None:
        """Why a webhook may not connect to this address, or None when it may."""
        if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
            found = found.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        network = ipaddress.ip_network(found)
        if _METADATA.covers(network):
            return f"{found} is a cloud metadata address: never a webhook's"
        denied = self.scope.deny_ranges.covers(network) or self.scope.private.covers(network)
        if denied and not self.allow.covers(network):
            return (
                f"{found} is on the deny list or a loopback, private, link-local or reserved address, "
                "not in TOOLRUNNER_WEBHOOK_ALLOW_NETWORKS"
            )
        return None
