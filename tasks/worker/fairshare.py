"""Fair share between tenants: per-tenant caps as leases in Redis, runs over them parked, slots given round-robin.

A run asks for admission before it takes its run lock. One Lua script either leases it a slot (its tenant is
under its cap, nobody waits and nothing is queued behind it) or parks it: the message is acked and its
envelope waits in its tenant's list, the tenant in a ring. When a run ends, a second script releases its
lease and picks the next runs round-robin across the ring, leasing each a slot before its message is
published again, so nobody can take that slot meanwhile. Leases expire unless renewed, so a dead worker's
slots come back within TOOLRUNNER_LEASE_TTL_SECONDS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import Enum, IntEnum
from functools import partial
from typing import Any

import kombu.exceptions
import redis
from celery import Celery, Task
from celery.exceptions import Ignore, Reject, Retry

from config import Settings
from tasks.service import RunPlan, Stage
from tasks.worker import backlog, keys, luascript, parking
from tasks.worker.heartbeat import renewing
from tasks.worker.progress import reporter

logger = logging.getLogger(__name__)

PICK_BUDGET = 64  # the most runs one script dispatches at once
TENANT_MEMORY_SECONDS = 3600  # a tenant idle this long drops out of the gauges
_eval = luascript.run
text = luascript.text


class Decision(IntEnum):
    """What admit.lua decided (the first item of its reply)."""

    PARKED = 0
    ADMITTED = 1
    DUPLICATE = 2  # of a run that is parked already
    ENDED = 3  # a copy of a run that already ended


@dataclass(frozen=True)
class Admission:
    """admit.lua's reply, decoded: what it decided, how many of the tenant's runs are ahead of a parked one, the
    host key a parked run waits for ('' = a slot), the rate an admitted run was given per host (0 = it holds no
    host lease), and the runs its parking let start (to publish)."""

    decided: Decision
    ahead: int
    dispatched: list[str]
    waiting_for: str = ""
    rate: float = 0.0

    @property
    def admitted(self) -> bool:
        """It holds a slot now and runs."""
        return self.decided is Decision.ADMITTED

    @property
    def duplicate(self) -> bool:
        """A copy of a run that is parked already, or that already ended: dropped."""
        return self.decided in (Decision.DUPLICATE, Decision.ENDED)

    @property
    def ended(self) -> bool:
        """A copy of a run that already ended (finished, cancelled or given up)."""
        return self.decided is Decision.ENDED


def admit(
    redis_client: redis.Redis, envelope: parking.Envelope, settings: Settings, *, first: bool = False
) -> Admission:
    """Lease a slot to this run or park it; either way, publish what the parking freed up to start.

    A run `first` in line (its message was delivered again: it had been admitted, or taken from the queue, by a
    worker that died or put it back) takes a free slot even with runs of its tenant waiting, or parks at their
    head: a killed worker's run resumes within the crash bound, not behind its tenant's whole backlog.
    """
    raw = _eval(
        redis_client, "admit", envelope.task_id, envelope.tenant_id, envelope.tool,
        _with_list(envelope).to_json(), settings.tenant_max_running, _ttl_ms(settings), envelope.queue, int(first),
        *_host_limits(settings),
    )  # fmt: skip
    decided, ahead, host, rate, *picked = raw
    return Admission(Decision(int(decided)), int(ahead), [text(p) for p in picked], text(host), float(text(rate)))


class Ending(Enum):
    """How a run lets go of what fair share holds for it."""

    FINISHED = "finished"  # it ran, or never will: all it held goes, and it is remembered as done
    UNFINISHED = "unfinished"  # still to happen (a retry, a put-back) or answered without running: all goes
    BEHIND_TWIN = "behind_twin"  # parked behind an identical run: its new envelope stays


def release(
    redis_client: redis.Redis, envelope: parking.Envelope | None, settings: Settings,
    ending: Ending = Ending.FINISHED, budget: int = PICK_BUDGET,
) -> list[str]:  # fmt: skip
    """End this run's hold (None: nobody's) and pick up to `budget` runs that may start now, round-robin.

    Every run that fits is picked, not one for the slot this run freed: a cap raised meanwhile (a tenant's, a
    host's) lets several in at once, and the global capacity still bounds the pick.

    Its lease, dispatching and unsent marks and (unless it is BEHIND_TWIN) its parked envelope go in one step. A
    finished run is remembered for as long as its id is bound to it, so a stray later copy of its message is
    dropped.
    """
    who = ("", "", "") if envelope is None else (envelope.task_id, envelope.tenant_id, envelope.tool)
    return _release(redis_client, who, settings, ending, budget)


def abandon(redis_client: redis.Redis, task_id: str, settings: Settings) -> list[str]:
    """End whatever fair share holds for a run that will never run (bad input, cancelled, expired, revoked).

    Its envelope (wherever it waits), lease and dispatching mark go, and a done marker drops any later copy
    of its message; returns the runs that may start now.
    """
    return _release(redis_client, (task_id, "", ""), settings, Ending.FINISHED, PICK_BUDGET)


def end_parked(celery_app: Celery, redis_client: redis.Redis, task_id: str, settings: Settings) -> None:
    """Abandon a run that will never run and publish the runs the slot it held lets start."""
    parking.dispatch(celery_app, redis_client, abandon(redis_client, task_id, settings))


def end_unstarted(
    task: Task, redis_client: redis.Redis, settings: Settings, *, only_this_message: bool = False
) -> None:
    """A run that ends before admission (bad input, cancelled): what it held parked, picked or leased goes.

    With `only_this_message`, only when the envelope parked under this id is this very message: a message
    that reuses the id of another run (parked, or running with its lease) must not end that run, and a
    message that was never parked holds nothing.
    """
    if only_this_message:
        parked = parking.load(redis_client, [task.request.id])
        mine = (task.name, list(task.request.args or ()), dict(task.request.kwargs or {}))
        if not parked or (parked[0].task, parked[0].args, parked[0].kwargs) != mine:
            return
    best_effort_end(task.app, redis_client, task.request.id, settings)


def best_effort_end(celery_app: Celery, redis_client: redis.Redis, task_id: str, settings: Settings) -> None:
    """end_parked, logged rather than raised when Redis or the broker is away (the safety net recovers the slot)."""
    try:
        end_parked(celery_app, redis_client, task_id, settings)
    except (redis.RedisError, kombu.exceptions.OperationalError) as exc:
        logger.warning("could not end the parked state of task=%s: %s", task_id, exc)


def _release(
    redis_client: redis.Redis, who: tuple[str, str, str], settings: Settings, ending: Ending, budget: int
) -> list[str]:
    done_ms = settings.identity_ttl * 1000 if ending is Ending.FINISHED else 0
    forget = int(ending is not Ending.BEHIND_TWIN)
    raw = _eval(
        redis_client, "release", *who, settings.tenant_max_running, _ttl_ms(settings), budget, done_ms, forget,
        *_host_limits(settings),
    )  # fmt: skip
    return [text(p) for p in raw]


class Renewal(IntEnum):
    """What renew.lua did with a running run's lease."""

    LOST = 0  # it was gone and no slot is free: the run stops and goes back to the queue (LEASE_LOST)
    RENEWED = 1
    RETAKEN = 2  # it was gone (Redis away longer than its TTL?) and a free slot was taken again


def renew(redis_client: redis.Redis, envelope: parking.Envelope, settings: Settings, rate: float = 0.0) -> Renewal:
    """Push this run's lease expiry a TTL ahead; an expired lease is taken again if a slot is free, and a run
    whose tenant is at its cap by then (or every worker slot leased) is told to go back: never running uncounted.
    """
    outcome = Renewal(int(_eval(
        redis_client, "renew", envelope.task_id, envelope.tenant_id, envelope.tool, _ttl_ms(settings),
        settings.tenant_max_running, *_host_limits(settings), envelope.to_json(), rate,
    )[0]))  # fmt: skip
    if outcome is Renewal.LOST:
        logger.warning("task=%s lost its lease and no slot is free: putting it back", envelope.task_id)
        redis_client.set(keys.LEASE_LOST(envelope.task_id), 1, ex=settings.lease_ttl_seconds * 2)
    elif outcome is Renewal.RETAKEN:
        logger.warning("task=%s lost its lease (Redis away?) and took a free slot again", envelope.task_id)
    return outcome


@dataclass(frozen=True)
class TenantLoad:
    """How many runs of a tenant hold a live lease and how many wait, across every worker."""

    tenant_id: str
    running: int
    waiting: int

    @property
    def name(self) -> str:
        """The gauge label: the tenant."""
        return self.tenant_id


@dataclass(frozen=True)
class HostLoad:
    """How many runs hold a live lease on a host key (an address or a block) and how many wait for it."""

    name: str
    running: int
    waiting: int


def host_loads(redis_client: redis.Redis) -> list[HostLoad]:
    """Running and waiting runs of each host key with a lease or a waiting run: a SCAN of the leased keys (at
    most the running runs' keys) and one read of the waiting marks. Expired leases are not counted."""
    now_ms = int(time.time() * 1000)
    prefix = keys.HOST("")
    hosts = [text(key)[len(prefix) :] for key in redis_client.scan_iter(match=keys.HOST.glob, count=1000)]
    with redis_client.pipeline(transaction=False) as pipe:
        for host in hosts:
            pipe.zcount(keys.HOST(host), now_ms, "+inf")
        running = dict(zip(hosts, (int(n) for n in pipe.execute()), strict=True))
    waiting: dict[str, int] = {}
    for raw in redis_client.hvals(keys.HOST_BLOCKED()):
        waiting[text(raw)] = waiting.get(text(raw), 0) + 1
    names = sorted({*(h for h, n in running.items() if n), *waiting})
    return [HostLoad(name, running.get(name, 0), waiting.get(name, 0)) for name in names]


def loads(redis_client: redis.Redis) -> list[TenantLoad]:
    """Running and waiting runs of each tenant seen in the last hour: 1 + 2 reads per such tenant."""
    now_ms = int(time.time() * 1000)
    redis_client.zremrangebyscore(keys.TENANTS(), "-inf", now_ms - TENANT_MEMORY_SECONDS * 1000)
    tenants = [text(t) for t in redis_client.zrange(keys.TENANTS(), 0, -1)]
    with redis_client.pipeline(transaction=False) as pipe:
        for tenant in tenants:
            pipe.zcount(keys.TENANT_LEASES(tenant), now_ms, "+inf")
            pipe.llen(keys.WAITING(tenant))
        replies = pipe.execute()
    return [TenantLoad(t, int(replies[2 * i]), int(replies[2 * i + 1])) for i, t in enumerate(tenants)]


def dispatch(task: Task, redis_client: redis.Redis, task_ids: list[str]) -> None:
    """Publish the picked runs again under their own ids."""
    parking.dispatch(task.app, redis_client, task_ids)


@dataclass(frozen=True)
class Reach:
    """Where a run connects, as host politeness leases it: its host keys (tasks.scope.reach.HostKey.wire), the rate
    its request asks for (0: none) and the least rate its tool can be told. Empty: it holds no host lease."""

    hosts: list[list[Any]] = field(default_factory=list)
    rate: float = 0.0
    min_rate: float = 0.0


@contextmanager
def tenant_slot(
    task: Task, plan: RunPlan, redis_client: redis.Redis, settings: Settings, reach: Reach | None = None
) -> Iterator[float]:
    """Hold a slot of the run's tenant and leases on its hosts while the body runs, which gets the rate its run
    was given per host (0: none); over a cap, park the run and end the task (Ignore)."""
    if not settings.fair_share:
        yield 0.0
        return
    envelope, rate = _admitted(task, plan, redis_client, settings, reach or Reach())
    with _holding(task, redis_client, settings, envelope, rate):
        yield rate


def _admitted(
    task: Task, plan: RunPlan, redis_client: redis.Redis, settings: Settings, reach: Reach
) -> tuple[parking.Envelope, float]:
    """Admit the run (its envelope and rate back) or park it or drop a copy (Ignore); publish what that lets start."""
    envelope = parking.envelope_of(
        task, plan.tenant_id, plan.spec.name, hosts=reach.hosts, rate=reach.rate, min_rate=reach.min_rate
    )
    redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
    if redelivered:
        logger.info("task=%s was delivered again: first in its tenant's line", envelope.task_id)
    try:
        decision = admit(redis_client, envelope, settings, first=redelivered)
    except redis.RedisError as exc:  # Redis restarting: the message goes back to the queue, nothing decided
        logger.warning("admission of task=%s failed, putting it back: %s", envelope.task_id, exc)
        raise Reject(f"admission failed: {exc}", requeue=True) from exc
    with _best_effort("dispatch after the admission of", envelope):
        picked = _drain_and_pick(task, redis_client, settings, envelope.queue)
        dispatch(task, redis_client, decision.dispatched + picked)
    if decision.duplicate:
        why = "already ended (finished, cancelled or given up)" if decision.ended else "is parked already"
        logger.info("task=%s %s; dropping this copy", envelope.task_id, why)
        raise Ignore()
    if not decision.admitted:
        report = reporter(task, plan.spec.name, plan.tenant_id, plan.run_id)
        if decision.waiting_for:
            report(Stage.WAITING_FOR_HOST, {"host": decision.waiting_for})
        else:
            report(Stage.WAITING_FOR_SLOT, {"ahead": decision.ahead})
        logger.info(
            "parked task=%s tenant=%s ahead=%d host=%s",
            envelope.task_id, plan.tenant_id, decision.ahead, decision.waiting_for or "-",
        )  # fmt: skip
        raise Ignore()
    return envelope, decision.rate


@contextmanager
def _holding(
    task: Task, redis_client: redis.Redis, settings: Settings, envelope: parking.Envelope, rate: float
) -> Iterator[None]:
    """Renew the run's leases (its hosts' at `rate`) while the body runs, then let go of them: finished, or still to
    happen."""
    ending = Ending.UNFINISHED
    with _renewing(redis_client, envelope, settings, rate):
        try:
            yield
            ending = Ending.FINISHED
        except (Retry, Reject):  # published again (or requeued): the run is still to happen
            raise
        except Exception:
            ending = Ending.FINISHED
            raise
        finally:
            # A failure here must not turn a finished run into a failed one: the lease expires within its TTL
            # and the safety net dispatches what waits.
            with _best_effort("release of", envelope):
                backlog.drain(task.app, redis_client, settings, envelope.queue)
                dispatch(task, redis_client, release(redis_client, envelope, settings, ending))


@contextmanager
def _best_effort(what: str, envelope: parking.Envelope) -> Iterator[None]:
    try:
        yield
    except (redis.RedisError, kombu.exceptions.OperationalError) as exc:
        logger.warning("%s task=%s failed (the safety net recovers it): %s", what, envelope.task_id, exc)


def _drain_and_pick(task: Task, redis_client: redis.Redis, settings: Settings, queue: str) -> list[str]:
    """With messages queued behind this run, move them to the waiting lists and pick what may start now."""
    if not redis_client.llen(queue) or not backlog.drain(task.app, redis_client, settings, queue):
        return []
    return release(redis_client, None, settings, budget=PICK_BUDGET)


def give_back(task: Task, redis_client: redis.Redis, settings: Settings, plan: RunPlan, ending: Ending) -> None:
    """Free the slot leased to a dispatched run that ends without running: a cache hit (UNFINISHED), or one that
    just parked behind an identical run (BEHIND_TWIN: its new envelope stays)."""
    if settings.fair_share:
        envelope = parking.envelope_of(task, plan.tenant_id, plan.spec.name)
        dispatch(task, redis_client, release(redis_client, envelope, settings, ending))


@contextmanager
def _renewing(redis_client: redis.Redis, envelope: parking.Envelope, settings: Settings, rate: float) -> Iterator[None]:
    with renewing(
        settings.lease_ttl_seconds / 3, partial(renew, redis_client, envelope, settings, rate),
        f"the lease of task={envelope.task_id}",
    ):  # fmt: skip
        yield


def _with_list(envelope: parking.Envelope) -> parking.Envelope:
    return replace(envelope, waiting_in=keys.WAITING(envelope.tenant_id))


def _host_limits(settings: Settings) -> tuple[int, float]:
    """The hosts' default cap and request budget as the scripts take them; a cap of 0 turns politeness off."""
    return (settings.host_max_running, settings.host_max_rps) if settings.politeness == "on" else (0, 0.0)


def _ttl_ms(settings: Settings) -> int:
    return settings.lease_ttl_seconds * 1000
