"""Events waiting to be delivered, in Redis: a durable schedule this package owns, never a Celery countdown.

Three kinds of keys (declared in tasks/worker/keys.py):

- `toolrunner:webhooks:event:<id>` (string, JSON): the event, its attempts and its state, written once when the
  run's final state is stored (SET NX: a redelivered run adds nothing). Its TTL covers the retries and the log:
  `TOOLRUNNER_WEBHOOK_MAX_AGE_SECONDS` + the log's days, reset to the log's days when it ends.
- `toolrunner:webhooks:due` (sorted set): the ids of the events not yet ended, scored by when (epoch ms) they are
  next due. Claiming one moves its score a lease ahead, and that score is the claim's token: only the holder of
  the current score may end it or schedule it again, so a worker killed mid-delivery leaves an event that is due
  again once its lease lapses (same id), and a late duplicate of its message finds its token stale.
- `toolrunner:webhooks:log:<tenant>` (sorted set): the tenant's attempts, scored by time; entries older than the
  log's days are trimmed at every write, and the key expires that long after its last one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis

from tasks.webhooks.event import Event

EVENT = "toolrunner:webhooks:event:{}"
DUE = "toolrunner:webhooks:due"
LOG = "toolrunner:webhooks:log:{}"
DAY = 86400

PENDING, DELIVERED, DEAD, GONE, DROPPED = "pending", "delivered", "dead_letter", "gone", "dropped"

# KEYS: due, event. ARGV: id, now ms, lease ms. The claim: due now -> due a lease from now; that score returned.
_CLAIM = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return false end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('ZREM', KEYS[1], ARGV[1]) return false end
local token = tonumber(ARGV[2]) + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], token, ARGV[1])
return token
"""
# KEYS: due, event. ARGV: id, token, next due ms (-1: ended), event JSON, TTL s. Only the claim's holder writes.
_SETTLE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
if tonumber(ARGV[3]) < 0 then redis.call('ZREM', KEYS[1], ARGV[1])
else redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])
return 1
"""


@dataclass(frozen=True)
class Stored:
    """An event as the outbox holds it: the event, its attempts so far, its state, and its first attempt's time."""

    event: Event
    attempts: int = 0
    state: str = PENDING
    since: float | None = None  # when retries started counting (the first attempt, or a redeliver)

    def to_json(self) -> str:
        """The stored form."""
        extra = {"attempts": self.attempts, "state": self.state, "since": self.since}
        return json.dumps({**self.event.as_dict(), **extra}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Stored:
        """Read the stored form."""
        data: Mapping[str, Any] = json.loads(raw)
        since = data.get("since")
        return cls(Event.from_dict(data), int(data["attempts"]), str(data["state"]), None if since is None else since)


def add(connection: redis.Redis, event: Event, *, due_ms: int, ttl: int) -> bool:
    """Record a new event due at `due_ms`; False (and nothing written) when the event already exists."""
    stored = Stored(event, since=event.created)
    if not connection.set(EVENT.format(event.id), stored.to_json(), nx=True, ex=ttl):
        return False
    connection.zadd(DUE, {event.id: due_ms}, nx=True)
    return True


def claim(connection: redis.Redis, event_id: str, now_ms: int, lease_ms: int) -> int | None:
    """Take a due event for one attempt: its token, or None when it is not due (someone holds it, or it ended)."""
    token = connection.eval(_CLAIM, 2, DUE, EVENT.format(event_id), event_id, now_ms, lease_ms)
    return None if token is None else int(token)


def holds(connection: redis.Redis, event_id: str, token: int) -> bool:
    """Whether `token` is still the event's claim."""
    score = connection.zscore(DUE, event_id)
    return score is not None and int(score) == token


def due(connection: redis.Redis, now_ms: int, limit: int = 500) -> list[str]:
    """The ids of events due at `now_ms`, oldest first."""
    found = connection.zrangebyscore(DUE, "-inf", now_ms, start=0, num=limit)
    return [_text(cast(bytes | str, i)) for i in found]


def load(connection: redis.Redis, event_id: str) -> Stored | None:
    """An event and its delivery state, or None once it is gone (expired, or never was)."""
    raw = connection.get(EVENT.format(event_id))
    return None if raw is None else Stored.from_json(raw)


def settle(connection: redis.Redis, stored: Stored, token: int, next_ms: int | None, ttl: int) -> bool:
    """Write an attempt's consequence, if `token` still holds the event: due again at `next_ms`, or ended (None).
    False when the claim was lost (its lease lapsed and another attempt took it): nothing is written."""
    nxt = -1 if next_ms is None else next_ms
    event_id = stored.event.id
    done = connection.eval(_SETTLE, 2, DUE, EVENT.format(event_id), event_id, token, nxt, stored.to_json(), ttl)
    return bool(done)


def requeue(connection: redis.Redis, event_id: str, now: float, ttl: int) -> Stored | None:
    """Make an event due now again, its attempts counted afresh (a redeliver); None when it is gone."""
    stored = load(connection, event_id)
    if stored is None:
        return None
    again = Stored(stored.event, 0, PENDING, now)
    with connection.pipeline(transaction=True) as pipe:
        pipe.set(EVENT.format(event_id), again.to_json(), ex=ttl)
        pipe.zadd(DUE, {event_id: int(now * 1000)})
        pipe.execute()
    return again


def forget(connection: redis.Redis, event_id: str) -> None:
    """Drop an id from the schedule (its event is gone)."""
    connection.zrem(DUE, event_id)


def record(connection: redis.Redis, tenant: str, entry: Mapping[str, Any], at: float, log_days: int) -> None:
    """Append one attempt to the tenant's log, trimming what is older than the log's days."""
    key = LOG.format(tenant)
    with connection.pipeline(transaction=True) as pipe:
        pipe.zadd(key, {json.dumps({"at": at, **entry}, separators=(",", ":")): int(at * 1000)})
        pipe.zremrangebyscore(key, "-inf", int((at - log_days * DAY) * 1000))
        pipe.expire(key, log_days * DAY)
        pipe.execute()


def log(tenant: str, *, connection: redis.Redis, limit: int = 100) -> list[dict[str, Any]]:
    """The tenant's latest attempts, newest first."""
    found = connection.zrevrange(LOG.format(tenant), 0, limit - 1)
    return [json.loads(cast(bytes | str, raw)) for raw in found]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
