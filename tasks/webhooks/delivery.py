"""One delivery attempt of one event, start to end: claimed, signed, sent, and its consequence written.

Redis and HTTP, no Celery (the task that calls it is tasks/worker/webhooks.py). A 2xx ends the event delivered;
410 Gone disables the tenant's endpoint and ends the event; anything else (another status, no answer, an address
the policy refuses) schedules the next attempt with backoff, or dead-letters the event once the next would fall
past TOOLRUNNER_WEBHOOK_MAX_AGE_SECONDS. An event whose tenant has no endpoint any more (unset mid-retry), or a
disabled one, is dropped. Every attempt, and every end, is a line in the tenant's delivery log.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import redis

from config import Settings
from tasks.errors import WebhookConfigError
from tasks.scope.matcher import Ranges
from tasks.scope.policy import policy as scope_policy
from tasks.scope.policy import setting_network
from tasks.webhooks import endpoint, outbox
from tasks.webhooks.outbox import DEAD, DELIVERED, DROPPED, GONE, Stored
from tasks.webhooks.policy import AddressPolicy, target
from tasks.webhooks.schedule import Backoff
from tasks.webhooks.sender import Attempt, Sender, system_resolve, tls_context
from tasks.webhooks.signing import headers

logger = logging.getLogger(__name__)

LEASE_MARGIN_SECONDS = 10  # a claim outlives its attempt's timeouts by this much before another may take it


@dataclass(frozen=True)
class Delivering:
    """Everything an attempt needs besides Redis, built once from the settings."""

    sender: Sender
    backoff: Backoff
    allow_http: bool
    log_days: int
    lease_ms: int
    jitter: Callable[[], float] = random.random
    clock: Callable[[], float] = time.time

    @classmethod
    def from_settings(cls, settings: Settings) -> Delivering:
        """The policy, TLS context, timeouts and schedule the settings describe; a malformed one fails here."""
        allow = Ranges(setting_network(i, "TOOLRUNNER_WEBHOOK_ALLOW_NETWORKS") for i in settings.webhook_allow_networks)
        connect, read = settings.webhook_connect_timeout_seconds, settings.webhook_read_timeout_seconds
        sender = Sender(AddressPolicy(scope_policy(settings), allow), tls_context(settings.webhook_ca_bundle),
                        connect, read, system_resolve)  # fmt: skip
        backoff = Backoff(settings.webhook_backoff_seconds, settings.webhook_backoff_max_seconds,
                          settings.webhook_max_age_seconds)  # fmt: skip
        lease = int((2 * connect + read + LEASE_MARGIN_SECONDS) * 1000)
        return cls(sender, backoff, settings.webhook_allow_http, settings.webhook_log_days, lease)

    @property
    def retention(self) -> int:
        """An ended event's TTL: as long as the log that names it."""
        return self.log_days * outbox.DAY

    def pending_ttl(self) -> int:
        """A new event's TTL: its retries, then the log."""
        return int(self.backoff.max_age + self.backoff.longest) + self.retention


@dataclass(frozen=True)
class Report:
    """What an attempt came to, for the metrics: its outcome, and the event's lag when it was delivered."""

    outcome: str  # delivered, failed, refused, gone, dropped
    dead_letter: bool = False
    lag_seconds: float | None = None


def attempt(connection: redis.Redis, how: Delivering, event_id: str, token: int) -> Report | None:
    """Make the attempt the claim `token` holds; None when there is nothing to do (the event or claim is gone)."""
    stored = outbox.load(connection, event_id)
    if stored is None:
        outbox.forget(connection, event_id)
        return None
    if not outbox.holds(connection, event_id, token):
        return None
    event, now = stored.event, how.clock()
    found = endpoint.get(event.tenant, connection=connection)
    if found is None or found.disabled:
        why = "the tenant has no webhook endpoint" if found is None else f"the endpoint is disabled: {found.disabled}"
        return _ended(connection, how, stored, token, DROPPED, {"outcome": "dropped", "error": why}, now)
    try:
        sent = how.sender.send(
            target(found.url, allow_http=how.allow_http), event.body.encode(),
            headers(found.signing(now), event.id, datetime.fromtimestamp(now, UTC), event.body.encode()),
        )  # fmt: skip
    except WebhookConfigError as exc:  # the URL was set when http was allowed, and it is not any more
        sent = Attempt(None, f"refused: {exc}", 0, refused=True)
    return _consequence(connection, how, stored, token, sent, now)


def _consequence(
    connection: redis.Redis, how: Delivering, stored: Stored, token: int, sent: Attempt, now: float
) -> Report | None:
    entry = {
        "event": stored.event.id, "type": stored.event.type.value, "attempt": stored.attempts + 1,
        "status": sent.status, "latency_ms": sent.latency_ms, "error": sent.error,
    }  # fmt: skip
    tried = replace(stored, attempts=stored.attempts + 1)
    if sent.status is not None and 200 <= sent.status < 300:
        report = _ended(connection, how, tried, token, DELIVERED, {**entry, "outcome": "delivered"}, now)
        return report and replace(report, lag_seconds=max(0.0, now + sent.latency_ms / 1000 - stored.event.created))
    if sent.status == 410:
        endpoint.disable(stored.event.tenant, f"the receiver answered 410 Gone at {int(now)}", connection=connection)
        return _ended(connection, how, tried, token, GONE, {**entry, "outcome": "gone"}, now)
    outcome = "refused" if sent.refused else "failed"
    since = stored.since if stored.since is not None else stored.event.created
    at = how.backoff.next_attempt(since, now, tried.attempts, how.jitter())
    if at is None:
        report = _ended(connection, how, tried, token, DEAD, {**entry, "outcome": "dead_letter"}, now)
        logger.error("webhook dead-lettered event=%s tenant=%s after %d attempts", stored.event.id,
                     stored.event.tenant, tried.attempts)  # fmt: skip
        return report and Report(outcome, dead_letter=True)
    if not outbox.settle(connection, tried, token, int(at * 1000), how.pending_ttl()):
        return None
    outbox.record(connection, stored.event.tenant, {**entry, "outcome": outcome, "next": at}, now, how.log_days)
    return Report(outcome)


def _ended(
    connection: redis.Redis, how: Delivering, stored: Stored, token: int, state: str, entry: dict[str, object],
    now: float,
) -> Report | None:  # fmt: skip
    if not outbox.settle(connection, replace(stored, state=state), token, None, how.retention):
        return None  # the claim lapsed meanwhile: the attempt that holds it now writes the end
    outbox.record(connection, stored.event.tenant, entry, now, how.log_days)
    logger.info("webhook event=%s tenant=%s %s (attempt %d)", stored.event.id, stored.event.tenant, state,
                stored.attempts)  # fmt: skip
    return Report(str(entry["outcome"]))


def redeliver(connection: redis.Redis, how: Delivering, event_id: str) -> Stored | None:
    """Send an event again from its first attempt (delivered, dead-lettered or dropped alike), same webhook-id;
    None when it is gone (older than the log)."""
    stored = outbox.requeue(connection, event_id, how.clock(), how.pending_ttl())
    if stored is not None:
        logger.info("webhook event=%s tenant=%s redelivery asked", event_id, stored.event.tenant)
    return stored


__all__ = ["Delivering", "Report", "attempt", "redeliver"]
