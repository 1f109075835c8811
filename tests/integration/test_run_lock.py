"""The run lock that keeps two deliveries of one task from overlapping, on a real Redis."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from tasks.run import RUNNING_KEY, _only_copy_running

pytestmark = pytest.mark.integration


def fake_task(task_id: str) -> Any:
    return SimpleNamespace(request=SimpleNamespace(id=task_id, is_eager=False))


def test_the_heartbeat_keeps_the_lock_past_its_ttl_and_releases_it_at_the_end(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tasks.run.RUN_LOCK_TTL", 1)
    key = RUNNING_KEY.format("lock-heartbeat")
    with redis.Redis.from_url(redis_url) as conn:
        with _only_copy_running(fake_task("lock-heartbeat")):
            time.sleep(2.5)  # well past the 1 s TTL: only renewals keep the key alive
            assert conn.exists(key) == 1
        assert conn.exists(key) == 0


def test_a_second_delivery_waits_until_the_first_releases_the_lock(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tasks.run.RUN_LOCK_TTL", 2)
    order: list[str] = []
    first_holds = threading.Event()

    def first() -> None:
        with _only_copy_running(fake_task("lock-order")):
            first_holds.set()
            time.sleep(1.0)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    first_holds.wait(10)
    with _only_copy_running(fake_task("lock-order")):
        order.append("second runs")
    thread.join()
    assert order == ["first done", "second runs"]
