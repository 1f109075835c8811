"""The fair-share Lua scripts on a real Redis: admission, parking, round-robin picks, leases and the drain."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery import Celery

import tasks.scope
from config import Settings
from tasks.worker import fairshare, keys
from tasks.worker.backlog import drain
from tasks.worker.metrics import OTHER_TENANTS, TenantCollector, bounded
from tests.conftest import database_url, flushed_database
from tests.unit.helpers import QUEUE, envelope, raw_message, register

DB = 12
SCOPED = Settings(scope_allow_private=("127.0.0.0/8",), tool_network="host")  # nmap reaches loopback from host


@pytest.fixture
def conn(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_database(database_url(redis_url, DB)) as client:
        yield client


def settings(cap: int = 2, ttl: int = 30) -> Settings:
    return Settings(tenant_max_running=cap, lease_ttl_seconds=ttl)


def test_a_run_is_admitted_while_its_tenant_is_under_its_cap_and_parked_at_it(conn: redis.Redis) -> None:
    register(conn, 8)
    first, second = (fairshare.admit(conn, envelope(i, "a"), settings()) for i in ("a1", "a2"))
    third = fairshare.admit(conn, envelope("a3", "a"), settings())
    fourth = fairshare.admit(conn, envelope("a4", "a"), settings())
    assert first.admitted and second.admitted
    assert (third.admitted, third.ahead, fourth.admitted, fourth.ahead) == (False, 0, False, 1)


def test_a_parked_run_admitted_again_is_a_duplicate(conn: redis.Redis) -> None:
    register(conn, 8)
    for i in ("a1", "a2", "a3"):
        fairshare.admit(conn, envelope(i, "a"), settings())
    assert fairshare.admit(conn, envelope("a3", "a"), settings()).duplicate


def test_a_release_picks_the_next_tenant_round_robin_and_leases_it_the_slot(conn: redis.Redis) -> None:
    register(conn, 2)
    for i in ("a1", "a2", "a3", "a4"):
        fairshare.admit(conn, envelope(i, "a"), settings(cap=8))
    fairshare.admit(conn, envelope("b1", "b"), settings(cap=8))
    picked = [fairshare.release(conn, envelope(i, "a"), settings(cap=8)) for i in ("a1", "a2")]
    assert picked == [["a3"], ["b1"]]
    assert conn.zscore(keys.LEASES(), "b1") is not None
    assert fairshare.admit(conn, envelope("b1", "b"), settings(cap=8)).admitted, "a dispatched run starts at once"


def test_a_finished_run_leaves_a_done_marker_that_drops_a_stray_copy(conn: redis.Redis) -> None:
    register(conn, 8)
    fairshare.admit(conn, envelope("a1", "a"), settings())
    fairshare.release(conn, envelope("a1", "a"), settings())
    assert fairshare.admit(conn, envelope("a1", "a"), settings()).duplicate


def test_an_expired_lease_frees_its_slot(conn: redis.Redis) -> None:
    register(conn, 8)
    fairshare.admit(conn, envelope("a1", "a"), settings(cap=1))
    conn.zadd(keys.LEASES(), {"a1": 1})  # as if its worker died long ago: its expiry has passed
    conn.zadd(keys.TENANT_LEASES("a"), {"a1": 1})
    assert fairshare.admit(conn, envelope("a2", "a"), settings(cap=1)).admitted


def test_a_per_tool_cap_parks_that_tool_only(conn: redis.Redis) -> None:
    register(conn, 8)
    conn.hset(keys.LIMITS(), "a:nuclei", 1)
    assert fairshare.admit(conn, envelope("n1", "a", "nuclei"), settings(cap=4)).admitted
    assert not fairshare.admit(conn, envelope("n2", "a", "nuclei"), settings(cap=4)).admitted
    assert fairshare.release(conn, None, settings(cap=4)) == []


def test_an_abandoned_parked_run_leaves_its_waiting_list_and_is_never_picked(conn: redis.Redis) -> None:
    register(conn, 8)
    for i in ("a1", "a2", "a3"):
        fairshare.admit(conn, envelope(i, "a"), settings())
    fairshare.abandon(conn, "a3", settings())
    assert not conn.hexists(keys.PARKED(), "a3") and conn.llen(keys.WAITING("a")) == 0
    assert fairshare.release(conn, envelope("a1", "a"), settings()) == []


def test_the_drain_moves_run_messages_oldest_first_and_leaves_other_messages(conn: redis.Redis) -> None:
    register(conn, 8)
    app = Celery("drain-test", set_as_current=False, broker="memory://", backend="cache+memory://")
    run = {"script": "true"}
    messages = [raw_message("toolrunner.run_tool", ["script", "a", f"r{i}", run], id=f"a{i}") for i in range(3)]
    messages.append(raw_message("toolrunner.maintenance.sweep", [], id="m"))
    for raw in messages:
        conn.lpush(QUEUE, raw)  # as kombu publishes: LPUSH, consumed from the right
    assert drain(app, conn, settings(), QUEUE) == 3
    assert conn.lrange(QUEUE, 0, -1) == [messages[3]]
    assert [i.decode() for i in conn.lrange(keys.WAITING("a"), 0, -1)] == ["a0", "a1", "a2"]
    assert app.backend.get_task_meta("a2")["result"]["ahead"] == 2


def test_the_drain_parks_only_runs_in_their_tenants_scope_and_leaves_the_rest_queued(conn: redis.Redis) -> None:
    register(conn, 8)
    app = Celery("drain-test", set_as_current=False, broker="memory://", backend="cache+memory://")
    tasks.scope.add("a", ["127.0.0.0/24"], connection=conn, settings=SCOPED)

    def nmap(tenant: str, run: str, target: str) -> bytes:
        return raw_message("toolrunner.run_tool", ["nmap", tenant, run, {"targets": [target]}], id=run)

    inside, outside, unscoped = (
        nmap("a", "in", "127.0.0.7"),
        nmap("a", "out", "127.0.1.7"),
        nmap("b", "b1", "127.0.0.7"),
    )
    for raw in (inside, outside, unscoped):
        conn.lpush(QUEUE, raw)
    assert drain(app, conn, SCOPED, QUEUE) == 1
    assert [i.decode() for i in conn.lrange(keys.WAITING("a"), 0, -1)] == ["in"]
    assert conn.lrange(QUEUE, 0, -1) == [unscoped, outside]  # a worker takes each and fails it, naming why


def test_the_tenant_gauges_count_live_leases_and_waiting_runs_per_tenant(conn: redis.Redis) -> None:
    register(conn, 8)
    for i in ("a1", "a2", "a3"):
        fairshare.admit(conn, envelope(i, "a"), settings())
    fairshare.admit(conn, envelope("b1", "b"), settings())
    families = {f.name: {s.labels["tenant"]: s.value for s in f.samples} for f in TenantCollector(conn).collect()}
    assert families == {"toolrunner_tenant_running": {"a": 2, "b": 1}, "toolrunner_tenant_waiting": {"a": 1, "b": 0}}


def test_the_tenant_gauges_name_only_the_busiest_tenants_and_sum_the_rest() -> None:
    loads = [fairshare.TenantLoad(f"t{i}", running=i, waiting=1) for i in range(5)]
    assert bounded(loads, top=2) == {"t4": (4, 1), "t3": (3, 1), OTHER_TENANTS: (3, 3)}
    assert bounded(loads[:2], top=2) == {"t1": (1, 1), "t0": (0, 1)}


def test_renewing_a_lease_pushes_its_expiry_a_ttl_ahead(conn: redis.Redis) -> None:
    register(conn, 8)
    fairshare.admit(conn, envelope("a1", "a"), settings(ttl=5))
    before = conn.zscore(keys.LEASES(), "a1")
    fairshare.renew(conn, envelope("a1", "a"), settings(ttl=59))
    after = conn.zscore(keys.LEASES(), "a1")
    assert before is not None and after is not None and after - before > 50_000
