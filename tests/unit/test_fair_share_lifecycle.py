"""One lifecycle for a parked run, on a real Redis: every way out after a pick ends all its state at once.

Security review 2, items 1 and 3-6, 8 and the republish of producers' options: each test here failed on the
code before the fix (see the closing note of issue 21).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis
from celery import Celery

from config import Settings
from tasks.errors import RunExpiredError
from tasks.worker import cache, chunks, fairshare, keys, luascript, parking, safetynet
from tasks.worker.backlog import drain, read_message
from tasks.worker.cancel import cancel, cancel_waiting, is_cancelled
from tasks.worker.delivery import Delivery, claim_identity
from tasks.worker.limits import set_limit
from tests.conftest import database_url, flushed_database
from tests.unit.helpers import QUEUE, envelope, raw_message, register

DB = 13
RUN = {"script": "true"}


@pytest.fixture
def conn(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_database(database_url(redis_url, DB)) as client:
        yield client


@pytest.fixture
def app(redis_url: str) -> Iterator[Celery]:
    """A producer on the same Redis: what the safety net and cancel publish lands in QUEUE, for real."""
    url = database_url(redis_url, DB)
    celery = Celery("lifecycle", set_as_current=False, broker=url, backend=url)
    celery.conf.task_default_queue = QUEUE
    yield celery
    celery.backend.client.connection_pool.disconnect()  # the backend's own client: close() leaves it open
    celery.close()


def settings(cap: int = 1) -> Settings:
    return Settings(tenant_max_running=cap, lease_ttl_seconds=30)


def state_of(conn: redis.Redis, task_id: str, tenant: str = "a") -> dict[str, object]:
    """Everything fair share could hold for one run id."""
    return {
        "parked": conn.hexists(keys.PARKED(), task_id),
        "parked_at": conn.zscore(keys.PARKED_AT(), task_id) is not None,
        "republished": conn.hexists(keys.REPUBLISHED(), task_id),
        "dispatching": conn.zscore(keys.DISPATCHING(), task_id) is not None,
        "unsent": conn.zscore(keys.UNSENT(), task_id) is not None,
        "leased": conn.zscore(keys.LEASES(), task_id) is not None,
        "waiting": task_id.encode() in conn.lrange(keys.WAITING(tenant), 0, -1),
    }


NOTHING = dict.fromkeys(("parked", "parked_at", "republished", "dispatching", "unsent", "leased", "waiting"), False)


def bound(conn: redis.Redis, *task_ids: str, tenant: str = "a") -> None:
    """Bind each id to its run, as publishing, the drain and the worker do before anything parks."""
    for task_id in task_ids:
        claim_identity(conn, Delivery(task_id, "script", tenant, task_id), ttl=600)


def picked(conn: redis.Redis, task_id: str = "a2") -> None:
    """a1 runs, a2 parks behind it (cap 1), a1 ends and a2 is picked: leased, dispatching, envelope kept, and
    unsent until its picker publishes it."""
    register(conn, 8)
    bound(conn, "a1", task_id)
    assert fairshare.admit(conn, envelope("a1", "a"), settings()).admitted
    assert not fairshare.admit(conn, envelope(task_id, "a"), settings()).admitted
    assert fairshare.release(conn, envelope("a1", "a"), settings()) == [task_id]
    assert state_of(conn, task_id) == {**NOTHING, "parked": True, "parked_at": True, "dispatching": True,
                                       "unsent": True, "leased": True}  # fmt: skip


def test_a_picked_run_that_ends_before_admission_leaves_nothing_and_is_never_admitted_later(conn: redis.Redis) -> None:
    picked(conn)
    fairshare.abandon(conn, "a2", settings())  # bad input, cancelled, revoked: each way out comes here
    assert state_of(conn, "a2") == NOTHING
    assert fairshare.admit(conn, envelope("a2", "a"), settings()).duplicate, "a later copy is dropped"


def test_a_picked_run_answered_from_the_cache_leaves_no_envelope(conn: redis.Redis) -> None:
    picked(conn)
    fairshare.release(conn, envelope("a2", "a"), settings(), fairshare.Ending.UNFINISHED)  # give_back after a hit
    assert state_of(conn, "a2") == NOTHING


def test_cancelling_a_picked_run_ends_it_revoked_and_nothing_can_republish_it(conn: redis.Redis, app: Celery) -> None:
    picked(conn)
    outcome = cancel(app, conn, settings(), "a2", "a")
    assert outcome.message.endswith("cancelled while it waited; it will not start")
    assert app.AsyncResult("a2").state == "REVOKED"
    assert state_of(conn, "a2") == NOTHING
    assert conn.ttl("toolrunner:cancel:a2:a") >= settings().identity_ttl - 5, "kept as long as the id is bound"
    conn.delete("toolrunner:cancel:a2:a")  # a day later: the cancel key is gone...
    conn.delete(QUEUE)
    time.sleep(0.01)
    assert safetynet.sweep_parked(app, conn, settings()) == 0  # ...and nothing brings the run back
    assert conn.llen(QUEUE) == 0
    assert fairshare.admit(conn, envelope("a2", "a"), settings()).duplicate, "its message, if it arrives, is dropped"


def test_cancel_reaches_a_run_waiting_in_its_tenants_list(conn: redis.Redis, app: Celery) -> None:
    register(conn, 8)
    bound(conn, "a1", "a2")
    fairshare.admit(conn, envelope("a1", "a"), settings())
    fairshare.admit(conn, envelope("a2", "a"), settings())
    cancel(app, conn, settings(), "a2", "a")
    assert state_of(conn, "a2") == NOTHING and is_cancelled(conn, "a2", "a")
    queued = [json.loads(raw)["headers"]["task"] for raw in conn.lrange(QUEUE, 0, -1)]
    assert queued == ["toolrunner.audit.cancelled"], "no run message is published for it: only its audit's ask"
    assert fairshare.release(conn, envelope("a1", "a"), settings()) == []


def test_the_safety_net_republishes_a_lost_dispatch_a_bounded_number_of_times_then_fails_it(
    conn: redis.Redis, app: Celery
) -> None:
    picked(conn)
    for _ in range(safetynet.MAX_REPUBLISHES):
        conn.zadd(keys.DISPATCHING(), {"a2": 1})  # dispatched long ago; its message never arrived
        assert safetynet.sweep_parked(app, conn, settings()) == 1
    assert conn.llen(QUEUE) == safetynet.MAX_REPUBLISHES
    conn.zadd(keys.DISPATCHING(), {"a2": 1})
    assert safetynet.sweep_parked(app, conn, settings()) == 0
    assert conn.llen(QUEUE) == safetynet.MAX_REPUBLISHES, "not published again"
    result = app.AsyncResult("a2")
    assert result.state == "FAILURE" and "dispatch was lost 4 times" in str(result.result)
    assert state_of(conn, "a2") == NOTHING


def test_a_picked_run_is_marked_sent_once_its_message_is_published(conn: redis.Redis, app: Celery) -> None:
    picked(conn)
    parking.dispatch(app, conn, ["a2"])
    assert conn.llen(QUEUE) == 1
    assert state_of(conn, "a2") == {**NOTHING, "parked": True, "parked_at": True, "dispatching": True, "leased": True}
    assert fairshare.admit(conn, envelope("a2", "a"), settings()).admitted
    assert state_of(conn, "a2") == {**NOTHING, "leased": True}


def test_a_run_whose_picker_died_before_publishing_it_is_published_by_the_safety_net_within_seconds(
    conn: redis.Redis, app: Celery
) -> None:
    """Issue 22: the picker died between the pick and the publish; before, nothing sent it for ten minutes."""
    picked(conn)
    assert safetynet.sweep_parked(app, conn, settings()) == 0, "its picker may still be publishing it"
    grace_ago = int(time.time() * 1000) - safetynet.UNSENT_GRACE_SECONDS * 1000 - 1
    conn.zadd(keys.UNSENT(), {"a2": grace_ago})
    assert safetynet.sweep_parked(app, conn, settings()) == 1
    assert conn.llen(QUEUE) == 1 and read_message(conn.lindex(QUEUE, 0), QUEUE) is not None
    assert state_of(conn, "a2") == {
        **NOTHING, "parked": True, "parked_at": True, "dispatching": True, "leased": True, "republished": True
    }  # fmt: skip
    assert safetynet.sweep_parked(app, conn, settings()) == 0, "published once"
    assert fairshare.admit(conn, envelope("a2", "a"), settings()).admitted, "its message runs on its pick's lease"


def test_a_published_run_that_no_queue_has_and_no_worker_holds_is_published_again_after_30s(
    conn: redis.Redis, app: Celery
) -> None:
    """Issue 22 (seed 2 of the soak): a worker killed between Redis popping a dispatched message and recording it
    unacked lost it for good, and the run waited ten minutes for the net's blind republish."""
    picked(conn)
    parking.dispatch(app, conn, ["a2"])
    late = int(time.time() * 1000) - safetynet.LOST_DISPATCH_SECONDS * 1000 - 1
    conn.zadd(keys.DISPATCHING(), {"a2": late})
    assert safetynet.sweep_parked(app, conn, settings()) == 0, "its message waits in the queue"
    raw = conn.rpop(QUEUE)  # a worker took it and holds it unacked, as Kombu's Redis transport records
    conn.hset(keys.UNACKED, "tag-1", json.dumps([json.loads(raw), "", QUEUE]))
    assert safetynet.sweep_parked(app, conn, settings()) == 0, "a worker holds it: a visibility timeout returns it"
    conn.hdel(keys.UNACKED, "tag-1")  # the worker died before it recorded the message: nowhere now
    assert safetynet.sweep_parked(app, conn, settings()) == 1
    assert conn.llen(QUEUE) == 1 and state_of(conn, "a2")["republished"]
    assert safetynet.sweep_parked(app, conn, settings()) == 0, "its dispatch restarted: no second copy"
    assert fairshare.admit(conn, envelope("a2", "a"), settings()).admitted


def test_a_run_delivered_again_goes_first_in_line_not_behind_its_tenants_backlog(conn: redis.Redis) -> None:
    """Issue 22: a killed worker's run comes back after its lease expired and another run of its tenant took the
    slot; it used to park behind the tenant's whole backlog, far past the crash bound."""
    register(conn, 8)
    bound(conn, "a1", "a2", "a3", "a0")
    assert fairshare.admit(conn, envelope("a1", "a"), settings()).admitted  # took the slot a0's lease left
    for waiting in ("a2", "a3"):
        assert not fairshare.admit(conn, envelope(waiting, "a"), settings()).admitted
    again = fairshare.admit(conn, envelope("a0", "a"), settings(), first=True)
    assert not again.admitted and again.ahead == 0, "parked at the head of its tenant's list"
    assert fairshare.release(conn, envelope("a1", "a"), settings()) == ["a0"]
    fairshare.release(conn, envelope("a0", "a"), settings())
    assert fairshare.admit(conn, envelope("b0", "b"), settings(), first=True).admitted, "a free slot: straight in"


def test_a_run_parked_longer_than_max_wait_ends_failed_with_the_reason(conn: redis.Redis, app: Celery) -> None:
    register(conn, 8)
    fairshare.admit(conn, envelope("a1", "a"), settings())
    fairshare.admit(conn, envelope("a2", "a"), settings())
    conn.zadd(keys.PARKED_AT(), {"a2": int((time.time() - settings().max_wait_seconds - 1) * 1000)})
    safetynet.sweep_parked(app, conn, settings())
    result = app.AsyncResult("a2")
    assert result.state == "FAILURE" and "waited over TOOLRUNNER_MAX_WAIT_SECONDS=86400" in str(result.result)
    assert isinstance(result.result, RunExpiredError) or "RunExpiredError" in repr(result.result)
    assert state_of(conn, "a2") == NOTHING
    assert fairshare.release(conn, envelope("a1", "a"), settings()) == [], "nothing of a2 is left to pick"


def test_a_chunk_given_up_after_max_wait_is_counted_failed_in_its_parent_which_then_merges(
    conn: redis.Redis, app: Celery
) -> None:
    register(conn, 8)
    conn.hset(keys.CHUNKS("parent"), mapping={"tenant_id": "a", "total": "1", "state": "running"})
    chunk = chunks.ChunkOf("parent", 0)
    fairshare.admit(conn, envelope("a1", "a"), settings())
    parked = replace(envelope(chunk.task_id, "a"), kwargs={"chunk": chunk.as_kwarg()})
    assert not fairshare.admit(conn, parked, settings()).admitted
    conn.zadd(keys.PARKED_AT(), {chunk.task_id: int((time.time() - settings().max_wait_seconds - 1) * 1000)})
    safetynet.sweep_parked(app, conn, settings())
    assert app.AsyncResult(chunk.task_id).state == "FAILURE"
    outcome = json.loads(conn.hget(keys.CHUNK_OUTCOMES("parent"), "0") or b"{}")
    assert outcome["status"] == "tool_failed" and "never started" in outcome["reason"]
    assert chunks.stored(conn, "parent")["state"] == "merging" and conn.zscore(keys.MERGING(), "parent") is not None


def test_the_drain_never_parks_an_invalid_run_or_an_id_bound_to_another_run(conn: redis.Redis, app: Celery) -> None:
    register(conn, 8)
    claim_identity(conn, Delivery("taken", "script", "b", "rb"), ttl=60)
    messages = [
        raw_message("toolrunner.run_tool", ["script", "a", "r1", {"script": ""}], id="bad-params"),
        raw_message("toolrunner.run_tool", ["nope", "a", "r2", RUN], id="bad-tool"),
        raw_message("toolrunner.run_tool", ["script", "acme:script", "r3", RUN], id="bad-tenant"),
        raw_message("toolrunner.run_tool", ["script", "a", "r4", RUN], id="taken"),
        raw_message("toolrunner.run_tool", ["script", "a", "r5", RUN], id="good"),
    ]
    for raw in messages:
        conn.lpush(QUEUE, raw)
    assert drain(app, conn, settings(), QUEUE) == 1
    assert conn.hkeys(keys.PARKED()) == [b"good"]
    assert conn.llen(QUEUE) == 4, "the rest stay queued: a worker fails or refuses each at once"
    assert conn.get("toolrunner:identity:good") is not None and conn.ttl("toolrunner:identity:good") > 86400


def test_a_tenant_id_that_could_name_another_tenants_keys_is_refused_by_every_script(conn: redis.Redis) -> None:
    register(conn, 8)
    with pytest.raises(redis.ResponseError, match="invalid identifier"):
        fairshare.admit(conn, envelope("x1", "acme:nmap"), settings())
    with pytest.raises(redis.ResponseError, match="invalid identifier"):
        fairshare.renew(conn, envelope("x1", "a", "nmap:x"), settings())
    assert conn.keys(keys.TENANT_LEASES("acme*")) == []


def test_cancel_and_resubmit_never_puts_a_tenant_in_the_ring_twice(conn: redis.Redis, app: Celery) -> None:
    register(conn, 2)
    cap = settings(cap=8)
    fairshare.admit(conn, envelope("hold1", "a"), cap)
    fairshare.admit(conn, envelope("hold2", "b"), cap)  # both global slots taken: everything else parks
    for i in range(10):
        bound(conn, f"a{i}")
        fairshare.admit(conn, envelope(f"a{i}", "a"), cap)
        cancel(app, conn, cap, f"a{i}", "a")
    for i in range(8):
        fairshare.admit(conn, envelope(f"a-{i}", "a"), cap)
        fairshare.admit(conn, envelope(f"b-{i}", "b"), cap)
    assert sorted(conn.lrange(keys.RING(), 0, -1)) == [b"a", b"b"]
    picks = []
    for held in ("hold1", "hold2", *(f"{p}-{i}" for i in range(7) for p in "ab")):
        picks += fairshare.release(conn, envelope(held, held[0]), cap)
        if len(picks) >= 16:
            break
    assert sum(p.startswith("a") for p in picks[:16]) == 8, picks


def test_an_expired_lease_is_taken_again_when_a_slot_is_free_and_the_run_told_to_go_back_when_not(
    conn: redis.Redis,
) -> None:
    register(conn, 8)
    cap = settings(cap=1)
    fairshare.admit(conn, envelope("a1", "a"), cap)
    for key in (keys.LEASES(), keys.TENANT_LEASES("a"), keys.TENANT_LEASES("a:script")):
        conn.delete(key)  # Redis was away longer than the lease TTL
    assert fairshare.renew(conn, envelope("a1", "a"), cap) == 2
    assert conn.zscore(keys.LEASES(), "a1") is not None
    conn.delete(keys.LEASES(), keys.TENANT_LEASES("a"), keys.TENANT_LEASES("a:script"))
    assert fairshare.admit(conn, envelope("a2", "a"), cap).admitted, "meanwhile another run took the slot"
    assert fairshare.renew(conn, envelope("a1", "a"), cap) == 0
    assert conn.get(keys.LEASE_LOST("a1")) is not None, "the run stops at its next poll and goes back"
    assert conn.zcard(keys.TENANT_LEASES("a")) == 1, "never two runs counted against a cap of one"


def test_a_parked_run_is_published_again_with_the_producers_expiry_and_time_limits(
    conn: redis.Redis, app: Celery
) -> None:
    raw = raw_message(
        "toolrunner.run_tool", ["script", "a", "r1", RUN], id="t-exp", expires="2030-01-01T00:00:00+00:00",
        timelimit=[600, 300],
    )  # fmt: skip
    queued = read_message(raw, QUEUE)
    assert queued is not None
    stored = parking.Envelope.from_json(queued.envelope.to_json())
    assert stored.expires == "2030-01-01T00:00:00+00:00" and stored.time_limits == (600.0, 300.0)
    parking.publish(app, [stored])
    headers = json.loads(conn.lpop(QUEUE) or b"{}")["headers"]
    assert (headers["id"], headers["expires"], headers["timelimit"]) == (
        "t-exp",
        "2030-01-01T00:00:00+00:00",
        [600, 300],
    )


def test_limits_and_cache_clear_refuse_ids_no_run_could_have(conn: redis.Redis) -> None:
    for tenant in ("acme", "acmf"):
        conn.hset(keys.CACHE_ENTRY(f"{tenant}:script:d1"), "result", "{}")
    with pytest.raises(ValueError, match="tenant_id 'a\\*' is invalid"):
        cache.clear(conn, "a*")
    assert len(conn.keys(keys.CACHE_ENTRY("*"))) == 2, "a glob in a tenant id clears nobody's entries"
    assert cache.clear(conn, "acme") == 1
    with pytest.raises(ValueError, match="tenant_id 'acme:nmap' is invalid"):
        set_limit(conn, "acme:nmap", 1)
    assert conn.hlen(keys.LIMITS()) == 0


def test_a_cancel_reaches_only_the_callers_own_run_and_answers_another_tenants_id_as_an_unknown_one(
    conn: redis.Redis, app: Celery
) -> None:
    register(conn, 8)
    bound(conn, "a1", "a2")
    fairshare.admit(conn, envelope("a1", "a"), settings())
    fairshare.admit(conn, envelope("a2", "a"), settings())  # parked behind a1
    theirs = cancel(app, conn, settings(), "a2", "b")
    nobodys = cancel(app, conn, settings(), "never-used", "b")
    assert (theirs.outcome, theirs.message.replace("a2", "ID")) == (
        nobodys.outcome, nobodys.message.replace("never-used", "ID")
    )  # fmt: skip
    assert state_of(conn, "a2")["parked"] and not is_cancelled(conn, "a2", "a"), "a's run is untouched"
    assert app.AsyncResult("a2").state == "PENDING"
    # b's cancel of an id nobody had published waits for b's run of it only: a's later run of it is not
    # cancelled (and b can no longer publish it, the id being a's).
    bound(conn, "never-used", tenant="a")
    assert not is_cancelled(conn, "never-used", "a") and is_cancelled(conn, "never-used", "b")


def test_a_retried_run_parked_again_keeps_its_retry_count_so_it_is_not_counted_as_a_worker_death(
    conn: redis.Redis, app: Celery
) -> None:
    retried = parking.Envelope("t-retry", "toolrunner.run_tool", ["script", "a", "r1", RUN], {}, QUEUE, "a", "script",
                               retries=2)  # fmt: skip
    assert parking.Envelope.from_json(retried.to_json()).retries == 2
    parking.publish(app, [retried])
    headers = json.loads(conn.lpop(QUEUE) or b"{}")["headers"]
    assert headers["retries"] == 2, "the worker subtracts retries from its delivery count"


def test_a_ring_written_before_the_ringed_set_heals_at_the_first_pick(conn: redis.Redis) -> None:
    register(conn, 1)
    cap = settings(cap=8)
    fairshare.admit(conn, envelope("hold", "a"), cap)
    for i in range(3):
        fairshare.admit(conn, envelope(f"a{i}", "a"), cap)
    fairshare.admit(conn, envelope("b0", "b"), cap)
    conn.rpush(keys.RING(), "a", "a")  # an older release pushed a again on each cancel-and-resubmit
    conn.delete(keys.RINGED())
    assert fairshare.release(conn, envelope("hold", "a"), cap) == ["a0"]
    assert conn.lrange(keys.RING(), 0, -1) == [b"b", b"a"], "each tenant once, in turn"
    assert fairshare.release(conn, envelope("a0", "a"), cap) == ["b0"]
    assert conn.lrange(keys.RING(), 0, -1) == [b"a"] and conn.smembers(keys.RINGED()) == {b"a"}


def test_the_waiters_of_a_dead_leaders_flight_are_published_by_the_safety_net(conn: redis.Redis, app: Celery) -> None:
    """The state x fault table's row "waiting behind an identical run x its leader's worker dies"."""
    key = "a:script:digest"
    names = [keys.CACHE_ENTRY(key), keys.FLIGHT(key), keys.WAITERS(key), keys.PARKED(), keys.DISPATCHING()]
    names += [keys.FLIGHTS(), keys.UNSENT()]
    waiter = replace(envelope("w1", "a"), waiting_in=keys.WAITERS(key))

    def lookup(task_id: str, entry: parking.Envelope) -> cache.Found:
        reply = luascript.run_keyed(conn, "cache_lookup", names, task_id, entry.to_json(), 60_000, 30_000)
        return cache.Lookup.decode(reply).found

    assert lookup("leader", envelope("leader", "a")) is cache.Found.LEAD
    assert lookup("w1", waiter) is cache.Found.WAIT
    cache.sweep_flights(app, conn, settings())
    assert conn.llen(QUEUE) == 0, "the leader's flight is alive: its waiter waits"
    conn.delete(keys.FLIGHT(key))  # the leader's worker died: its flight key expired within a lease TTL
    cache.sweep_flights(app, conn, settings())
    assert conn.llen(QUEUE) == 1 and read_message(conn.lindex(QUEUE, 0), QUEUE) is not None
    assert state_of(conn, "w1") == {**NOTHING, "parked": True, "dispatching": True}, "published: no longer unsent"
    assert lookup("w1", waiter) is cache.Found.LEAD, "it leads now"
    assert state_of(conn, "w1") == NOTHING


def test_cancel_waiting_ends_every_waiting_run_of_the_tenant_in_batches_and_nothing_else(
    conn: redis.Redis, app: Celery
) -> None:
    register(conn, 8)
    ids = [f"w{i}" for i in range(1, 1201)]  # more than one script call's batch
    bound(conn, *ids)
    bound(conn, "b1", "b2", tenant="b")
    assert fairshare.admit(conn, envelope("w0", "a"), settings()).admitted  # a's one slot: the rest wait
    for task_id in ids:
        assert not fairshare.admit(conn, envelope(task_id, "a"), settings()).admitted
    assert fairshare.admit(conn, envelope("b1", "b"), settings()).admitted
    assert not fairshare.admit(conn, envelope("b2", "b"), settings()).admitted
    conn.rpush(QUEUE, raw_message("toolrunner.run_tool", ["script", "a", "q1", RUN], id="q1"))  # queued, not drained
    claim_identity(conn, Delivery("q1", "script", "a", "q1"), ttl=600)
    app.conf.task_default_queue = QUEUE
    assert cancel_waiting(app, conn, settings(), "a") == 1201, "the 1,200 parked and the one still queued"
    for task_id in (*ids[::97], "q1"):
        assert state_of(conn, task_id) == NOTHING and is_cancelled(conn, task_id, "a"), task_id
        assert app.AsyncResult(task_id).state == "REVOKED"
    assert not conn.exists(keys.WAITING("a")) and b"a" not in conn.lrange(keys.RING(), 0, -1)
    assert conn.zscore(keys.LEASES(), "w0") is not None, "a running run goes on"
    assert state_of(conn, "b2", "b")["waiting"], "another tenant's waiting run stays"
    assert fairshare.admit(conn, envelope("w7", "a"), settings()).ended, "a later copy of its message is dropped"
    assert cancel_waiting(app, conn, settings(), "a") == 0


def test_cancel_waiting_cancels_a_chunked_run_whole_when_its_chunks_wait(conn: redis.Redis, app: Celery) -> None:
    register(conn, 8)
    conn.hset(keys.CHUNKS("p"), mapping={"tenant_id": "a", "tool": "script", "run_id": "p", "total": "3",
                                         "state": "running", "retries": "1", "sent": "2"})  # fmt: skip
    claim_identity(conn, Delivery("p", "script", "a", "p"), ttl=600)
    bound(conn, "a0")
    assert fairshare.admit(conn, envelope("a0", "a"), settings()).admitted  # a's one slot: its chunks wait
    for index in (0, 1):
        chunk = chunks.ChunkOf("p", index)
        claim_identity(conn, Delivery(chunk.task_id, "script", "a", "p"), ttl=600)
        waiting = replace(envelope(chunk.task_id, "a"), args=["script", "a", "p"], kwargs={"chunk": chunk.as_kwarg()})
        assert not fairshare.admit(conn, waiting, settings()).admitted
    assert cancel_waiting(app, conn, settings(), "a") == 2
    assert chunks.stored(conn, "p")["state"] == "cancelled" and app.AsyncResult("p").state == "REVOKED"
    assert all(is_cancelled(conn, chunks.chunk_task_id("p", i, a), "a") for i in range(3) for a in range(2)), (
        "every chunk's every attempt, the one not yet published too"
    )
    assert not conn.exists(keys.CHUNK_PLAN("p")) and not conn.exists(keys.WAITING("a"))
