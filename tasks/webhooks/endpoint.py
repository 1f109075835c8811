"""Tenants' webhook endpoints in Redis, set by operators only: one hash, `toolrunner:webhooks:endpoints`.

Each field is a tenant; its value the endpoint as JSON: the URL, the secrets that sign (the newest first; one a
rotation replaced carries the time it stops signing), and, once a receiver answered 410 Gone, why it is disabled.
The operators own the key (`toolrunner webhooks set/unset/rotate`, or these functions); deliveries only ever
disable an endpoint. Secrets never reach a log line or a repr.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import redis

from isolation import validate_identifier
from tasks.errors import WebhookConfigError
from tasks.scope.store import actor
from tasks.webhooks.policy import target
from tasks.webhooks.signing import fingerprint, parse_secret

logger = logging.getLogger(__name__)

KEY = "toolrunner:webhooks:endpoints"


@dataclass(frozen=True)
class Secret:
    """One signing secret, and when it stops signing (None: until it is rotated out)."""

    value: str = field(repr=False)
    until: float | None = None

    @property
    def name(self) -> str:
        """What may be shown of it."""
        return fingerprint(self.value)


@dataclass(frozen=True)
class Endpoint:
    """A tenant's endpoint: where its events go and the secrets that sign them."""

    tenant: str
    url: str
    secrets: tuple[Secret, ...]
    disabled: str | None = None  # why deliveries stopped (a 410 Gone), until an operator sets it again

    def signing(self, now: float) -> list[str]:
        """The secrets that sign at `now`: the current one, and one a rotation replaced until its overlap ends."""
        return [s.value for s in self.secrets if s.until is None or s.until > now]

    def to_json(self) -> str:
        """The stored form."""
        secrets = [{"secret": s.value, "until": s.until} for s in self.secrets]
        return json.dumps({"url": self.url, "secrets": secrets, "disabled": self.disabled}, separators=(",", ":"))

    @classmethod
    def from_json(cls, tenant: str, raw: str | bytes) -> Endpoint:
        """Read the stored form."""
        stored = json.loads(raw)
        secrets = tuple(Secret(str(s["secret"]), s.get("until")) for s in stored["secrets"])
        return cls(tenant, str(stored["url"]), secrets, stored.get("disabled"))


def set(tenant: str, url: str, secret: str, *, connection: redis.Redis, allow_http: bool = False) -> Endpoint:
    """Set a tenant's endpoint, replacing any earlier one (and its secrets); a disabled one is enabled again."""
    validate_identifier("tenant id", tenant)
    target(url, allow_http=allow_http)
    endpoint = Endpoint(tenant, url, (Secret(parse_secret(secret)),))
    connection.hset(KEY, tenant, endpoint.to_json())
    _event("set", tenant, url=url, secret=endpoint.secrets[0].name)
    return endpoint


def rotate(tenant: str, secret: str, *, connection: redis.Redis, overlap_seconds: float) -> Endpoint:
    """Make `secret` the tenant's signing secret; the one it replaces still signs for `overlap_seconds`."""
    current = get(tenant, connection=connection)
    if current is None:
        raise WebhookConfigError(f"tenant {tenant} has no webhook endpoint to rotate the secret of")
    now = time.time()
    kept = [s for s in current.secrets if s.until is None or s.until > now][:1]  # the one in use; older ones go
    retired = tuple(Secret(s.value, now + overlap_seconds) for s in kept if overlap_seconds > 0)
    endpoint = Endpoint(tenant, current.url, (Secret(parse_secret(secret)), *retired), current.disabled)
    connection.hset(KEY, tenant, endpoint.to_json())
    _event("rotate", tenant, secret=endpoint.secrets[0].name, overlap_seconds=overlap_seconds)
    return endpoint


def unset(tenant: str, *, connection: redis.Redis) -> bool:
    """Remove a tenant's endpoint: no event is recorded for its runs any more, and pending ones are dropped."""
    validate_identifier("tenant id", tenant)
    removed = bool(connection.hdel(KEY, tenant))
    _event("unset", tenant, removed=int(removed))
    return removed


def get(tenant: str, *, connection: redis.Redis) -> Endpoint | None:
    """A tenant's endpoint, or None."""
    raw = connection.hget(KEY, tenant)
    return None if raw is None else Endpoint.from_json(tenant, raw)


def show(tenant: str | None = None, *, connection: redis.Redis) -> list[Endpoint]:
    """Every endpoint (or one tenant's), by tenant."""
    if tenant is not None:
        found = get(tenant, connection=connection)
        return [found] if found is not None else []
    raw = connection.hgetall(KEY)
    return sorted((Endpoint.from_json(_text(t), v) for t, v in raw.items()), key=lambda e: e.tenant)


def disable(tenant: str, reason: str, *, connection: redis.Redis) -> None:
    """Stop delivering to a tenant's endpoint (its receiver said 410 Gone) until an operator sets it again."""
    current = get(tenant, connection=connection)
    if current is None:
        return
    disabled = Endpoint(current.tenant, current.url, current.secrets, reason)
    connection.hset(KEY, tenant, disabled.to_json())
    logger.warning("webhooks event=disabled tenant=%s reason=%s", tenant, reason)


def _event(action: str, tenant: str, **detail: object) -> None:
    extra = " ".join(f"{k}={v}" for k, v in detail.items())
    logger.info("webhooks event=%s tenant=%s %s by=%s", action, tenant, extra, actor())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
