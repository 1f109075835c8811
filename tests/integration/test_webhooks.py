"""Completion webhooks through real workers to a real HTTPS receiver on loopback (a CA of the test's own), every
request's signature verified with the library's verifier: delivered once, retried with one id, through a
receiver outage, a webhook worker SIGKILLed mid-delivery and a Redis restart (AOF) mid-backoff; loopback and
metadata receivers refused without the allowance; a cancel sends run.cancelled."""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import tasks.webhooks
from bench.launch import LaunchError, Worker, free_port, start_worker, wait_until
from bench.receiver import LocalCA, Receiver
from tasks import cancel_run, run_tool
from tasks.webhooks import outbox
from tasks.worker import keys
from tasks.worker.limits import set_limit, unset_limit
from tests.integration.helpers import client_app, pings

pytestmark = pytest.mark.integration
WAIT = 60


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA.make(tmp_path_factory.mktemp("ca"))


def hook_env(ca: LocalCA, allow: str = "127.0.0.0/8,::1/128") -> dict[str, str]:
    """Backoff shrunk to 0.5 s doubling to 2 s, timeouts of 1 s and 2 s (a 14 s lease), polled five times a second."""
    return {
        "TOOLRUNNER_WEBHOOK_CA_BUNDLE": str(ca.ca_file), "TOOLRUNNER_WEBHOOK_ALLOW_NETWORKS": allow,
        "TOOLRUNNER_WEBHOOK_BACKOFF_SECONDS": "0.5", "TOOLRUNNER_WEBHOOK_BACKOFF_MAX_SECONDS": "2",
        "TOOLRUNNER_WEBHOOK_CONNECT_TIMEOUT_SECONDS": "1", "TOOLRUNNER_WEBHOOK_READ_TIMEOUT_SECONDS": "2",
        "TOOLRUNNER_WEBHOOK_POLL_SECONDS": "0.2",
    }  # fmt: skip


@pytest.fixture(scope="module")
def runs(redis_url: str, busybox_image: str, ca: LocalCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    with redis.Redis.from_url(redis_url) as conn:
        conn.flushdb()
    running = start_worker(tmp_path_factory.mktemp("runs"), "runs", concurrency=2, env=hook_env(ca))
    yield running
    running.stop()


@pytest.fixture
def hooks(runs: Worker, ca: LocalCA, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start webhook workers (-Q webhooks) with the test's settings; all stopped at teardown."""
    started: list[Worker] = []

    def start(env: dict[str, str] | None = None) -> Worker:
        name = f"hooks{len(started)}"
        started.append(start_worker(tmp_path, name, concurrency=2, queues="webhooks", env=env or hook_env(ca)))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def conn(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as client:
        yield client


@pytest.fixture
def receiver(ca: LocalCA) -> Iterator[Receiver]:
    running = Receiver(ca, [tasks.webhooks.new_secret()]).start()
    yield running
    running.stop()


def endpoint(conn: redis.Redis, receiver: Receiver, url: str | None = None) -> str:
    tenant = f"hooked-{secrets.token_hex(3)}"
    tasks.webhooks.set(tenant, url or receiver.url, receiver.secrets[0], connection=conn)
    return tenant


def finish_run(tenant: str, script: str = "echo done > /outputs/out.txt") -> dict[str, Any]:
    result: dict[str, Any] = run_tool.delay("script", tenant, "hooked-run", {"script": script}).get(timeout=WAIT)
    return result


def payload(received: Any) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(received.body)
    return found


def test_a_finished_run_is_delivered_once_with_a_valid_signature(
    conn: redis.Redis, receiver: Receiver, hooks: Callable[..., Worker], ca: LocalCA
) -> None:
    port = free_port()
    hooks({**hook_env(ca), "TOOLRUNNER_METRICS_PORT": str(port)})
    tenant = endpoint(conn, receiver)
    result = finish_run(tenant)
    (got,) = receiver.wait_for(1, WAIT)
    assert got.verified and got.headers["webhook-id"] == tasks.webhooks.event_id(tenant, result["task_id"])
    body = payload(got)
    assert body["type"] == "run.succeeded" and body["data"]["task_id"] == result["task_id"]
    assert "findings" not in body["data"] and body["data"]["stats"] == result["stats"]
    hooks_registered = [m.decode() for m in conn.zrange(keys.WORKERS(), 0, -1) if m.startswith(b"hooks0@")]
    assert hooks_registered and all(m.endswith("|0") for m in hooks_registered), "a webhook worker takes no run"
    time.sleep(2)
    assert len(receiver.got) == 1
    scraped = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'toolrunner_webhook_deliveries_total{outcome="delivered"} 1.0' in scraped
    assert "toolrunner_webhook_lag_seconds_count 1.0" in scraped


def test_500_three_times_then_200_is_delivered_with_the_same_webhook_id(
    conn: redis.Redis, receiver: Receiver, hooks: Callable[..., Worker]
) -> None:
    hooks()
    receiver.statuses = [500, 500, 500]
    tenant = endpoint(conn, receiver)
    finish_run(tenant)
    got = receiver.wait_for(4, WAIT)
    assert [r.status for r in got] == [500, 500, 500, 200] and all(r.verified for r in got)
    assert len({r.headers["webhook-id"] for r in got}) == 1
    logged = tasks.webhooks.log(tenant, connection=conn)
    assert [e["outcome"] for e in logged] == ["delivered", "failed", "failed", "failed"]


def test_a_receiver_down_for_10_s_gets_the_event_once_it_is_back(
    conn: redis.Redis, receiver: Receiver, hooks: Callable[..., Worker]
) -> None:
    hooks()
    tenant = endpoint(conn, receiver)
    receiver.stop()
    finish_run(tenant)
    time.sleep(10)
    receiver.start()
    (got,) = receiver.wait_for(1, WAIT)
    assert got.verified and payload(got)["type"] == "run.succeeded"
    refused = [e for e in tasks.webhooks.log(tenant, connection=conn) if e["outcome"] == "failed"]
    assert len(refused) >= 3 and all("refused" in e["error"] for e in refused)


def test_a_webhook_worker_sigkilled_mid_delivery_still_delivers_the_same_id(
    conn: redis.Redis, receiver: Receiver, hooks: Callable[..., Worker]
) -> None:
    first = hooks()
    arrived, release = threading.Event(), threading.Event()

    def hold() -> None:  # the first request waits here while its worker is killed
        if not arrived.is_set():
            arrived.set()
            release.wait(10)

    receiver.hold = hold
    tenant = endpoint(conn, receiver)
    finish_run(tenant)
    assert arrived.wait(WAIT)
    first.kill_group()
    release.set()
    hooks()
    got = receiver.wait_for(2, WAIT)
    assert len({r.headers["webhook-id"] for r in got}) == 1 and all(r.verified for r in got)
    event_id = got[0].headers["webhook-id"]
    wait_until(lambda: (outbox.load(conn, event_id) or outbox.Stored).state == outbox.DELIVERED, WAIT, "delivered")


def test_a_redis_restart_with_aof_mid_backoff_still_delivers(
    own_redis: tuple[str, Any], busybox_image: str, ca: LocalCA, tmp_path: Path, receiver: Receiver
) -> None:
    url, restart = own_redis
    producer = client_app(url)
    env = {**hook_env(ca), "TOOLRUNNER_BROKER_URL": url, "TOOLRUNNER_RESULT_BACKEND": url}
    worker = start_worker(tmp_path, "aof", concurrency=2, queues="celery,webhooks", env=env, client=producer)
    try:
        receiver.statuses = [500] * 10_000
        with redis.Redis.from_url(url) as own:
            tenant = endpoint(own, receiver)
            producer.send_task("toolrunner.run_tool", ("script", tenant, "aof-run", {"script": "true"}))
            receiver.wait_for(2, WAIT)
        restart(1.0)
        wait_until(lambda: pings(url), 30, "redis to come back")
        receiver.statuses.clear()
        wait_until(lambda: receiver.got[-1].status == 200, WAIT, "a delivery after the restart")
        assert len({r.headers["webhook-id"] for r in receiver.got}) == 1 and all(r.verified for r in receiver.got)
    finally:
        worker.stop()


def test_loopback_and_metadata_receivers_are_refused_without_the_allowance(
    conn: redis.Redis, receiver: Receiver, hooks: Callable[..., Worker], ca: LocalCA
) -> None:
    hooks({**hook_env(ca, allow=""), "TOOLRUNNER_WEBHOOK_BACKOFF_SECONDS": "60"})
    loopback = endpoint(conn, receiver)
    metadata = endpoint(conn, receiver, url="https://169.254.169.254/latest/hook")
    finish_run(loopback)
    finish_run(metadata)
    for tenant, said in ((loopback, "127.0.0.1"), (metadata, "metadata")):
        entry = wait_until(lambda t=tenant: tasks.webhooks.log(t, connection=conn), WAIT, f"{tenant}'s attempt")[0]
        assert entry["outcome"] == "refused" and said in entry["error"], entry
    assert receiver.got == []


def test_a_cancelled_run_sends_run_cancelled(
    conn: redis.Redis, receiver: Receiver, hooks: Callable[..., Worker]
) -> None:
    hooks()
    tenant = endpoint(conn, receiver)
    handle = run_tool.delay("script", tenant, "cancelled-run", {"script": "sleep 30", "timeout_seconds": 60})
    wait_until(lambda: (handle.info or {}).get("stage") == "running" if handle.state == "PROGRESS" else False, WAIT,
               "the run to start")  # fmt: skip
    cancel_run(handle.id, tenant_id=tenant)
    (got,) = receiver.wait_for(1, WAIT)
    body = payload(got)
    assert got.verified and body["type"] == "run.cancelled" and body["data"]["task_id"] == handle.id
    assert body["data"]["status"] == "cancelled"


def test_a_run_that_raised_sends_run_failed_with_status_error(
    conn: redis.Redis, receiver: Receiver, hooks: Callable[..., Worker]
) -> None:
    hooks()
    tenant = endpoint(conn, receiver)
    handle = run_tool.delay("absent", tenant, "raised-run", {})
    handle.get(timeout=WAIT, propagate=False)
    assert handle.state == "FAILURE"
    (got,) = receiver.wait_for(1, WAIT)
    body = payload(got)
    assert got.verified and body["type"] == "run.failed" and body["data"]["status"] == "error"
    assert body["data"]["task_id"] == handle.id and body["data"]["reason"]


def test_runs_refused_before_admission_or_expired_unrun_send_run_failed_with_the_reason(
    conn: redis.Redis, receiver: Receiver, hooks: Callable[..., Worker]
) -> None:
    hooks()
    tenant = endpoint(conn, receiver)  # a tenant with no scope: every target is out of it
    out_of_scope = run_tool.delay("nmap", tenant, "refused-scope", {"targets": ["192.0.2.7"], "ports": "80"})
    bad_input = run_tool.delay("script", tenant, "refused-input", {"script": "true", "no_such_param": 1})
    expired = run_tool.apply_async(("script", tenant, "expired-run", {"script": "true"}), expires=-1)
    for handle in (out_of_scope, bad_input, expired):
        handle.get(timeout=WAIT, propagate=False)
    got = {payload(r)["data"]["task_id"]: (r, payload(r)) for r in receiver.wait_for(3, WAIT)}
    assert all(r.verified and body["type"] == "run.failed" for r, body in got.values())
    assert got[out_of_scope.id][1]["data"]["reason"].startswith("refused: OutOfScopeError: ")
    assert got[bad_input.id][1]["data"]["reason"].startswith("refused: ") and "no_such_param" in str(got[bad_input.id])
    assert got[expired.id][1]["data"]["reason"].startswith("expired: ")
    time.sleep(2)
    assert len(receiver.got) == 3, "one event each"


@pytest.fixture
def chunker(hooks: Callable[..., Worker], ca: LocalCA, tmp_path: Path) -> Iterator[Worker]:
    """A run worker on a queue of its own whose nmap reaches loopback addresses (host network), and a webhook worker."""
    hooks()
    env = {**hook_env(ca), "TOOLRUNNER_TOOL_NETWORK": "host"}
    running = start_worker(tmp_path, "hookchunks", concurrency=3, queues="hookchunks", env=env)
    yield running
    running.stop()


def chunked(tenant: str, run: str, **params: Any) -> Any:
    request = {"targets": [f"127.0.9.{i}" for i in range(1, 7)], "chunk_size": 2, **params}
    return run_tool.apply_async(("nmap", tenant, run, request), queue="hookchunks")


def test_a_chunked_run_sends_one_event_for_its_parent_and_none_for_its_chunks(
    conn: redis.Redis, receiver: Receiver, chunker: Worker, scoped: Callable[..., None]
) -> None:
    tenant = endpoint(conn, receiver)
    scoped(tenant)
    result = chunked(tenant, "chunked-run", ports="9").get(timeout=120)
    assert result["chunks"]["total"] == 3
    (got,) = receiver.wait_for(1, WAIT)
    time.sleep(2)
    assert len(receiver.got) == 1
    body = payload(got)
    assert body["data"]["task_id"] == result["task_id"] and body["data"]["chunks"]["total"] == 3
    assert body["type"] == ("run.succeeded" if result["status"] == "ok" else "run.failed")


def test_a_cancelled_chunked_run_sends_run_cancelled_once_for_its_parent(
    conn: redis.Redis, receiver: Receiver, chunker: Worker, scoped: Callable[..., None]
) -> None:
    tenant = endpoint(conn, receiver)
    scoped(tenant)
    slow = chunked(tenant, "slow-chunked", ports="1-40", max_rate=1)  # 80 probes a chunk at 1 a second
    wait_until(lambda: slow.state == "PROGRESS" and (slow.info or {}).get("stage") == "chunks", WAIT, "chunks")
    assert "every chunk" in cancel_run(slow.id, tenant_id=tenant).message
    (got,) = receiver.wait_for(1, WAIT)
    time.sleep(3)
    assert len(receiver.got) == 1
    body = payload(got)
    assert body["type"] == "run.cancelled" and body["data"]["task_id"] == slow.id and got.verified


def test_a_queued_run_cancelled_before_it_starts_sends_run_cancelled(
    conn: redis.Redis, receiver: Receiver, hooks: Callable[..., Worker]
) -> None:
    hooks()
    tenant = endpoint(conn, receiver)
    busy = [run_tool.delay("script", tenant, f"busy-{i}", {"script": "sleep 4"}) for i in range(2)]
    leased = lambda: all(conn.zscore(keys.LEASES(), b.id) is not None for b in busy)  # noqa: E731
    wait_until(leased, WAIT, "both slots busy")  # so the next run waits, whichever process takes it
    queued = run_tool.delay("script", tenant, "queued-run", {"script": "true"})
    cancel_run(queued.id, tenant_id=tenant)
    for handle in busy:
        handle.get(timeout=WAIT)
    got = receiver.wait_for(3, WAIT)
    by_task = {payload(r)["data"]["task_id"]: payload(r)["type"] for r in got}
    assert by_task == {busy[0].id: "run.succeeded", busy[1].id: "run.succeeded", queued.id: "run.cancelled"}


def test_a_parked_run_cancelled_while_it_waits_sends_run_cancelled(
    conn: redis.Redis, receiver: Receiver, hooks: Callable[..., Worker]
) -> None:
    hooks()
    tenant = endpoint(conn, receiver)
    set_limit(conn, tenant, 1)  # one at a time: the second run parks behind the first
    try:
        running = run_tool.delay("script", tenant, "holder", {"script": "sleep 4"})
        # Admitted first, so the second parks (sent together, two pool processes race for the one slot).
        wait_until(lambda: conn.zscore(keys.LEASES(), running.id) is not None, WAIT, "the first run admitted")
        parked = run_tool.delay("script", tenant, "parked-run", {"script": "true"})
        wait_until(lambda: conn.hexists(keys.PARKED(), parked.id), WAIT, "the second run to park")
        cancel_run(parked.id, tenant_id=tenant)
        running.get(timeout=WAIT)
    finally:
        unset_limit(conn, tenant)
    got = receiver.wait_for(2, WAIT)
    by_task = {payload(r)["data"]["task_id"]: payload(r)["type"] for r in got}
    assert by_task == {running.id: "run.succeeded", parked.id: "run.cancelled"}


@pytest.mark.parametrize(
    ("setting", "value"),
    [("TOOLRUNNER_WEBHOOK_CA_BUNDLE", "/nonexistent/ca.pem"), ("TOOLRUNNER_WEBHOOK_ALLOW_NETWORKS", "not-a-network")],
)
def test_a_worker_with_a_malformed_webhook_setting_refuses_to_start(
    redis_url: str, tmp_path: Path, setting: str, value: str
) -> None:
    name = f"malformed-{secrets.token_hex(3)}"  # a ping from any other worker must not pass for this one's
    try:
        started = start_worker(tmp_path, name, concurrency=1, env={setting: value})
    except LaunchError as refused:
        assert "refusing to start: webhooks" in str(refused) and "exited early" in str(refused)
    else:
        started.stop()
        pytest.fail(f"a worker with {setting}={value} started")
