"""The run lock that keeps two deliveries of one task from overlapping, on a real Redis."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from tasks.worker import keys
from tasks.worker.delivery import run_lock

pytestmark = pytest.mark.integration


def test_the_heartbeat_keeps_the_lock_past_its_ttl_and_releases_it_at_the_end(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tasks.worker.delivery.RUN_LOCK_TTL", 1)
    key = keys.RUNNING("lock-heartbeat")
    with redis.Redis.from_url(redis_url) as conn:
        with run_lock(conn, "lock-heartbeat", wait=10):
            time.sleep(2.5)  # well past the 1 s TTL: only renewals keep the key alive
            assert conn.exists(key) == 1
        assert conn.exists(key) == 0


def test_a_second_delivery_waits_until_the_first_releases_the_lock(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tasks.worker.delivery.RUN_LOCK_TTL", 2)
    order: list[str] = []
    first_holds = threading.Event()

    def first() -> None:
        with redis.Redis.from_url(redis_url) as conn, run_lock(conn, "lock-order", wait=10):
            first_holds.set()
            time.sleep(1.0)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    first_holds.wait(10)
    with redis.Redis.from_url(redis_url) as conn, run_lock(conn, "lock-order", wait=10):
        order.append("second runs")
    thread.join()
    assert order == ["first done", "second runs"]
