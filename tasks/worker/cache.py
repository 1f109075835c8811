"""The result cache: an opted-in run whose identical twin succeeded recently returns that result, never running twice.

Looked up before tenant admission, so hits and waiters hold no worker slot and no tenant lease. The first of
identical runs leads (a flight key in Redis); the others park behind it (acked, see parking.py) and are
published again when it ends: then they hit, or, if it failed, one of them leads in its place.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import IntEnum

import docker
import redis
from celery import Celery, Task
from celery.exceptions import Ignore

import isolation
from config import Settings
from tasks.service import CacheInfo, RunPlan, RunResult, Stage, Status
from tasks.service.cachekey import cache_key
from tasks.worker import fairshare, keys, luascript, parking
from tasks.worker.heartbeat import renewing
from tasks.worker.luascript import text
from tasks.worker.progress import reporter

logger = logging.getLogger(__name__)

_Field = str | bytes | bytearray | memoryview | int | float


@dataclass(frozen=True)
class Cached:
    """The cache's answer for one run: a hit to return, or the key to keep its result under when it ends."""

    hit: RunResult | None = None
    key: str | None = None

    def keep(self, redis_client: redis.Redis, settings: Settings, result: RunResult) -> RunResult:
        """Store an ok result under the key and mark the result as a miss."""
        if self.key is None:
            return result
        if result.status is Status.OK and (result.cache is None or not result.cache.hit):
            entry: dict[_Field, _Field] = {
                "result": json.dumps(result.as_dict()), "stored_at": int(time.time() * 1000), "source": result.task_id
            }  # fmt: skip
            with redis_client.pipeline() as pipe:
                pipe.hset(keys.CACHE_ENTRY(self.key), mapping=entry)
                pipe.expire(keys.CACHE_ENTRY(self.key), settings.cache_max_age_seconds)
                pipe.execute()
        return replace(result, cache=CacheInfo(hit=False))


def key_of(plan: RunPlan, engine: Callable[[], docker.DockerClient], settings: Settings) -> str | None:
    """The run's cache key ("<tenant>:<tool>:<digest>"), or None when it did not opt in or its image is missing."""
    if not plan.params.cache_max_age_seconds:
        return None
    try:
        image = isolation.image_id(engine(), settings.image_for(plan.spec.name, plan.spec.image))
    except isolation.IsolationError:  # absent (pulled by the run) or the engine away (retried by the run): no cache
        return None
    digest = cache_key(plan, image_id=image, salt=settings.cache_salt)
    return f"{plan.tenant_id}:{plan.spec.name}:{digest}"


class Found(IntEnum):
    """What a lookup found (the first item of cache_lookup.lua's reply)."""

    LEAD = 0  # nothing fresh and nobody in flight: this run leads, runs the tool and keeps its result
    HIT = 1  # a fresh entry: its result is the answer
    WAIT = 2  # an identical run is in flight: this one parks behind it


_COUNTED = {Found.HIT: "hits", Found.WAIT: "waits", Found.LEAD: "misses"}  # the outcome label of cache_lookups


@dataclass(frozen=True)
class Lookup:
    """cache_lookup.lua's reply, decoded: a hit's stored result, when it was stored and by whom, or the leader."""

    found: Found
    stored: str = ""
    stored_at_ms: int = 0
    source: str = ""
    leader: str = ""

    @classmethod
    def decode(cls, reply: list[bytes | int]) -> Lookup:
        found = Found(int(reply[0]))
        if found is Found.HIT:
            return cls(found, text(reply[1]), int(reply[2]), text(reply[3]))
        if found is Found.WAIT:
            return cls(found, leader=text(reply[1]))
        return cls(found)


@contextmanager
def result_cache(
    task: Task, plan: RunPlan, engine: Callable[[], docker.DockerClient], redis_client: redis.Redis, settings: Settings
) -> Iterator[Cached]:
    """Yield a hit, or lead the flight of this key while the body runs; a run behind an identical one parks (Ignore)."""
    key = key_of(plan, engine, settings)
    if key is None:
        yield Cached()
        return
    ttl = settings.lease_ttl_seconds * 1000
    answer = _lookup(task, plan, redis_client, settings, key)
    if answer.found is not Found.LEAD:  # ends here without running: a slot leased to it at dispatch goes on
        # A hit ends the run: whatever it still held parked goes too. A waiter keeps its new envelope.
        ending = fairshare.Ending.UNFINISHED if answer.found is Found.HIT else fairshare.Ending.BEHIND_TWIN
        fairshare.give_back(task, redis_client, settings, plan, ending)
    _count(_COUNTED[answer.found], plan.spec.name)
    if answer.found is Found.HIT:
        yield Cached(hit=_hit(task, plan, answer))
        return
    if answer.found is Found.WAIT:
        meta = {"leader": answer.leader}
        reporter(task, plan.spec.name, plan.tenant_id, plan.run_id)(Stage.WAITING_FOR_IDENTICAL_RUN, meta)
        raise Ignore()
    with _leading(redis_client, key, task.request.id, ttl):
        try:
            yield Cached(key=key)
        finally:
            finish(task.app, redis_client, key, task.request.id)


def _lookup(task: Task, plan: RunPlan, redis_client: redis.Redis, settings: Settings, key: str) -> Lookup:
    max_age = min(plan.params.cache_max_age_seconds, settings.cache_max_age_seconds)
    envelope = parking.envelope_of(task, plan.tenant_id, plan.spec.name)
    envelope = replace(envelope, waiting_in=keys.WAITERS(key))
    names = [keys.CACHE_ENTRY(key), keys.FLIGHT(key), keys.WAITERS(key), keys.PARKED(), keys.DISPATCHING()]
    names += [keys.FLIGHTS(), keys.UNSENT()]
    args = (task.request.id, envelope.to_json(), max_age * 1000, settings.lease_ttl_seconds * 1000)
    return Lookup.decode(luascript.run_keyed(redis_client, "cache_lookup", names, *args))


def finish(celery_app: Celery, redis_client: redis.Redis, key: str, leader: str) -> None:
    """End a flight (leader '' = one whose leader is gone) and publish its waiters again."""
    names = [keys.FLIGHT(key), keys.WAITERS(key), keys.DISPATCHING(), keys.FLIGHTS(), keys.UNSENT()]
    ids = [text(i) for i in luascript.run_keyed(redis_client, "cache_finish", names, leader)]
    parking.dispatch(celery_app, redis_client, ids)


def _hit(task: Task, plan: RunPlan, answer: Lookup) -> RunResult:
    stored = RunResult.from_dict(json.loads(answer.stored))
    age = max(0.0, (time.time() * 1000 - answer.stored_at_ms) / 1000)
    cache = CacheInfo(hit=True, source_task_id=answer.source, age_seconds=round(age, 3))
    # The notices are this request's (what its settings capped), not those of the run that stored the result.
    return replace(stored, task_id=str(task.request.id), run_id=plan.run_id, cache=cache, notices=list(plan.notices))


@contextmanager
def _leading(redis_client: redis.Redis, key: str, task_id: str, ttl_ms: int) -> Iterator[None]:
    """Keep the flight key alive while the leader runs (a dead leader's flight ends within the TTL)."""

    def renew() -> None:
        if text(redis_client.get(keys.FLIGHT(key))) == task_id:
            redis_client.pexpire(keys.FLIGHT(key), ttl_ms)

    with renewing(ttl_ms / 3000, renew, f"the flight of task={task_id}"):
        yield


def clear(redis_client: redis.Redis, tenant_id: str | None = None, tool: str | None = None) -> int:
    """Delete cached results (all, a tenant's, or a tenant's tool's); return how many.

    The ids are checked as a run's are, so no glob character can reach the SCAN pattern and widen it.
    """
    for name, value in (("tenant_id", tenant_id), ("tool", tool)):
        if value is not None:
            isolation.validate_identifier(name, value)
    pattern = keys.CACHE_ENTRY(f"{tenant_id or '*'}:{tool or '*'}:*")
    removed = 0
    for key in redis_client.scan_iter(match=pattern, count=500):
        removed += int(redis_client.delete(key))
    return removed


def sweep_flights(celery_app: Celery, redis_client: redis.Redis, settings: Settings) -> None:
    """Keep the flights of leaders parked for a tenant slot; end dead ones and hand their waiters back."""
    for raw in redis_client.smembers(keys.FLIGHTS()):
        flight = text(raw)
        leader = redis_client.get(flight)
        if leader is None:
            finish(celery_app, redis_client, flight.removeprefix(keys.FLIGHT("")), "")
        elif redis_client.hexists(keys.PARKED(), text(leader)):
            redis_client.pexpire(flight, settings.lease_ttl_seconds * 1000)


def _count(what: str, tool: str) -> None:
    from tasks.worker.metrics import metrics

    found = metrics()
    if found is not None:
        found.cache_lookups.labels(tool, what).inc()
