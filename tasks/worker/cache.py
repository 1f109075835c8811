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
from typing import Any

import docker
import redis
from celery import Celery, Task
from celery.exceptions import Ignore

import isolation
from config import Settings
from tasks.service import CacheInfo, RunPlan, RunResult, Stage, Status
from tasks.service.cachekey import cache_key
from tasks.worker import fairshare, lua_cache, parking
from tasks.worker.heartbeat import renewing
from tasks.worker.progress import reporter

logger = logging.getLogger(__name__)

CACHE = "toolrunner:cache:"
FLIGHTS = CACHE + "flights"  # set of live flight keys, for the safety net
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
                pipe.hset(_entry(self.key), mapping=entry)
                pipe.expire(_entry(self.key), settings.cache_max_age_seconds)
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
    digest = cache_key(
        tenant_id=plan.tenant_id, tool=plan.spec.name, image_id=image, argv=plan.invocation.argv, inputs=plan.inputs,
        version=plan.spec.version, salt=settings.cache_salt,
    )  # fmt: skip
    return f"{plan.tenant_id}:{plan.spec.name}:{digest}"


@contextmanager
def result_cache(
    task: Task, plan: RunPlan, engine: Callable[[], docker.DockerClient], redis_client: redis.Redis, settings: Settings
) -> Iterator[Cached]:
    """Yield a hit, or lead the flight of this key while the body runs; a run behind an identical one parks (Ignore)."""
    key = key_of(plan, engine, settings)
    if key is None:
        yield Cached()
        return
    max_age = min(plan.params.cache_max_age_seconds, settings.cache_max_age_seconds)
    envelope = parking.envelope_of(task, plan.tenant_id, plan.spec.name)
    envelope = parking.Envelope(**{**envelope.__dict__, "waiting_in": _waiters(key)})
    keys = (_entry(key), _flight(key), _waiters(key), parking.PARKED, fairshare.DISPATCHING, FLIGHTS, parking.UNSENT)
    ttl = settings.lease_ttl_seconds * 1000
    answer = redis_client.eval(
        lua_cache.LOOKUP, len(keys), *keys, task.request.id, envelope.to_json(), max_age * 1000, ttl
    )
    if answer[0] in (1, 2):  # ends here without running: a slot leased to it at dispatch goes to the next run
        # A hit ends the run: whatever it still held parked goes too. A waiter keeps its new envelope.
        fairshare.give_back(task, redis_client, settings, plan.tenant_id, plan.spec.name, forget=answer[0] == 1)
    if answer[0] == 1:
        _count("hits", plan.spec.name)
        yield Cached(hit=_hit(task, plan, answer))
        return
    if answer[0] == 2:
        _count("waits", plan.spec.name)
        leader = fairshare.text(answer[1])
        reporter(task, plan.spec.name, plan.tenant_id, plan.run_id)(Stage.WAITING_FOR_IDENTICAL_RUN, {"leader": leader})
        raise Ignore()
    _count("misses", plan.spec.name)
    with _leading(redis_client, key, task.request.id, ttl):
        try:
            yield Cached(key=key)
        finally:
            finish(task.app, redis_client, key, task.request.id)


def finish(celery_app: Celery, redis_client: redis.Redis, key: str, leader: str) -> None:
    """End a flight (leader '' = one whose leader is gone) and publish its waiters again."""
    keys = (_flight(key), _waiters(key), fairshare.DISPATCHING, FLIGHTS, parking.UNSENT)
    ids = [fairshare.text(i) for i in redis_client.eval(lua_cache.FINISH, len(keys), *keys, leader)]
    parking.dispatch(celery_app, redis_client, ids)


def _hit(task: Task, plan: RunPlan, answer: list[Any]) -> RunResult:
    stored = RunResult.from_dict(json.loads(answer[1]))
    age = max(0.0, (time.time() * 1000 - int(answer[2])) / 1000)
    cache = CacheInfo(hit=True, source_task_id=fairshare.text(answer[3]), age_seconds=round(age, 3))
    return replace(stored, task_id=str(task.request.id), run_id=plan.run_id, cache=cache)


@contextmanager
def _leading(redis_client: redis.Redis, key: str, task_id: str, ttl_ms: int) -> Iterator[None]:
    """Keep the flight key alive while the leader runs (a dead leader's flight ends within the TTL)."""

    def renew() -> None:
        if fairshare.text(redis_client.get(_flight(key))) == task_id:
            redis_client.pexpire(_flight(key), ttl_ms)

    with renewing(ttl_ms / 3000, renew, f"the flight of task={task_id}"):
        yield


def clear(redis_client: redis.Redis, tenant_id: str | None = None, tool: str | None = None) -> int:
    """Delete cached results (all, a tenant's, or a tenant's tool's); return how many.

    The ids are checked as a run's are, so no glob character can reach the SCAN pattern and widen it.
    """
    for name, value in (("tenant_id", tenant_id), ("tool", tool)):
        if value is not None:
            isolation.validate_identifier(name, value)
    pattern = f"{CACHE}entry:{tenant_id or '*'}:{tool or '*'}:*"
    removed = 0
    for key in redis_client.scan_iter(match=pattern, count=500):
        removed += int(redis_client.delete(key))
    return removed


def sweep_flights(celery_app: Celery, redis_client: redis.Redis, settings: Settings) -> None:
    """Keep the flights of leaders parked for a tenant slot; end dead ones and hand their waiters back."""
    for raw in redis_client.smembers(FLIGHTS):
        flight = fairshare.text(raw)
        leader = redis_client.get(flight)
        if leader is None:
            finish(celery_app, redis_client, flight.removeprefix(f"{CACHE}flight:"), "")
        elif redis_client.hexists(parking.PARKED, fairshare.text(leader)):
            redis_client.pexpire(flight, settings.lease_ttl_seconds * 1000)


def _entry(key: str) -> str:
    return f"{CACHE}entry:{key}"


def _flight(key: str) -> str:
    return f"{CACHE}flight:{key}"


def _waiters(key: str) -> str:
    return f"{CACHE}waiters:{key}"


def _count(what: str, tool: str) -> None:
    from tasks.worker.metrics import metrics

    found = metrics()
    if found is not None:
        found.cache_lookups.labels(tool, what).inc()
