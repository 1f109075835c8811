"""Fair share with two real workers, real Redis and Docker: caps observed on the engine's labelled containers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
import redis
from celery import Celery
from celery.result import AsyncResult

from bench.launch import Worker, start_worker, wait_until
from config import celery_config, load_settings
from tasks.worker import keys
from tasks.worker.cancel import cancel
from tasks.worker.limits import set_limit
from tests.conftest import REDIS_URL
from tests.integration.helpers import tool_containers

pytestmark = pytest.mark.integration
SHARE_DB = REDIS_URL.rsplit("/", 1)[0] + "/11"
SLEEP = {"script": "echo start > /outputs/out.txt; sleep 3; echo end >> /outputs/out.txt"}
ENV = {"TOOLRUNNER_BROKER_URL": SHARE_DB, "TOOLRUNNER_TENANT_MAX_RUNNING": "2", "TOOLRUNNER_LEASE_TTL_SECONDS": "9"}


class Watch:
    """Samples a tenant's running tool containers on the engine in a thread; keeps the highest count."""

    def __init__(self, client: docker.DockerClient, tenant: str) -> None:
        self.highest = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(client, tenant), daemon=True)
        self._thread.start()

    def _run(self, client: docker.DockerClient, tenant: str) -> None:
        while not self._stop.wait(0.1):
            self.highest = max(self.highest, tool_containers(client, tenant))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.highest


@pytest.fixture
def producer(redis_url: str, docker_client: docker.DockerClient, busybox_image: str) -> Iterator[Celery]:
    with redis.Redis.from_url(SHARE_DB) as conn:
        conn.flushdb()
    app = Celery("share-client", set_as_current=False)
    app.conf.update(celery_config(load_settings()), broker_url=SHARE_DB, result_backend=SHARE_DB)
    yield app
    app.close()


@pytest.fixture
def two_workers(producer: Celery, tmp_path: Path) -> Iterator[Callable[[], list[Worker]]]:
    started: list[Worker] = []

    def start() -> list[Worker]:
        for name in ("share-a", "share-b"):
            started.append(start_worker(tmp_path / name, name, concurrency=3, env=ENV, client=producer))
        return started

    yield start
    for worker in started:
        worker.stop()


def submit(producer: Celery, tenant: str, count: int, prefix: str) -> list[AsyncResult]:
    return [producer.send_task("toolrunner.run_tool", ("script", tenant, f"{prefix}-{i}", SLEEP)) for i in range(count)]


def waiting_for_slot(run: AsyncResult) -> bool:
    return run.state == "PROGRESS" and run.info.get("stage") == "waiting_for_slot"


def test_a_tenant_never_runs_more_than_its_cap_while_another_tenant_goes_ahead(
    producer: Celery, two_workers: Callable[[], list[Worker]], docker_client: docker.DockerClient
) -> None:
    two_workers()
    watch = Watch(docker_client, "busy")
    busy = submit(producer, "busy", 6, "busy")
    wait_until(lambda: tool_containers(docker_client, "busy") == 2, 60, "two runs of busy")
    quiet = submit(producer, "quiet", 2, "quiet")
    assert [r.get(timeout=120)["status"] for r in quiet] == ["ok", "ok"]
    assert sum(r.ready() for r in busy) < 6, "quiet's runs should not wait for all of busy's"
    assert [r.get(timeout=180)["status"] for r in busy] == ["ok"] * 6
    assert watch.stop() == 2


def test_a_waiting_run_reports_its_place_and_a_cancel_ends_it_at_once(
    producer: Celery, two_workers: Callable[[], list[Worker]], docker_client: docker.DockerClient
) -> None:
    two_workers()
    busy = submit(producer, "busy", 2, "place")
    wait_until(lambda: tool_containers(docker_client, "busy") == 2, 60, "two runs of busy")
    for i in (2, 3):  # one at a time: `ahead` is counted when a run parks, so the order must be known
        busy += submit(producer, "busy", 1, f"place-{i}")
        wait_until(lambda run=busy[-1]: waiting_for_slot(run), 60, "the run to park")
    assert [busy[2].info["ahead"], busy[3].info["ahead"]] == [0, 1]
    with redis.Redis.from_url(SHARE_DB) as conn:
        outcome = cancel(producer, conn, load_settings(), busy[3].id, "busy")
        assert outcome.message.endswith("cancelled while it waited; it will not start")
        wait_until(lambda: producer.AsyncResult(busy[3].id).state == "REVOKED", 30, "the waiting run to end")
        assert not conn.hexists(keys.PARKED(), busy[3].id), "its place in the waiting list is gone"
        assert cancel(producer, conn, load_settings(), busy[3].id, "busy").message.endswith("already cancelled")
    assert [r.get(timeout=120)["status"] for r in busy[:3]] == ["ok"] * 3
    assert producer.AsyncResult(busy[3].id).state == "REVOKED", "a cancelled waiting run never starts"


def test_raising_a_cap_at_run_time_takes_effect_at_the_next_admission(
    producer: Celery, two_workers: Callable[[], list[Worker]], docker_client: docker.DockerClient
) -> None:
    two_workers()
    with redis.Redis.from_url(SHARE_DB) as conn:
        set_limit(conn, "grow", 1)
        runs = submit(producer, "grow", 4, "grow")
        wait_until(lambda: tool_containers(docker_client, "grow") == 1, 60, "one run of grow")
        set_limit(conn, "grow", 3)
    watch = Watch(docker_client, "grow")
    wait_until(lambda: tool_containers(docker_client, "grow") >= 2, 60, "more runs of grow after the raise")
    assert [r.get(timeout=120)["status"] for r in runs] == ["ok"] * 4
    assert 2 <= watch.stop() <= 3


def test_a_sigkilled_workers_slots_come_back_and_its_tenant_runs_on(
    producer: Celery, two_workers: Callable[[], list[Worker]], docker_client: docker.DockerClient
) -> None:
    first, second = two_workers()
    with redis.Redis.from_url(SHARE_DB) as conn:
        set_limit(conn, "crash", 1)
    second.stop()
    long = producer.send_task(
        "toolrunner.run_tool", ("script", "crash", "crash-long", {"script": "sleep 600", "timeout_seconds": 600})
    )
    wait_until(lambda: tool_containers(docker_client, "crash") == 1, 60, "the long run")
    waiting = submit(producer, "crash", 1, "crash-next")[0]
    wait_until(lambda: waiting.state == "PROGRESS", 30, "the next run to park")
    first.kill_group()
    for container in docker_client.api.containers(all=True, filters={"label": ["studio.tenant=crash"]}):
        docker_client.api.remove_container(container["Id"], force=True)
    for volume in docker_client.api.volumes(filters={"label": ["studio.tenant=crash"]})["Volumes"] or []:
        docker_client.api.remove_volume(volume["Name"], force=True)
    second.process = start_worker(second.log.parent, second.name, concurrency=3, env=ENV, client=producer).process
    # The dead worker's lease expires (TTL 9 s) and the survivor's safety net dispatches the parked run.
    assert waiting.get(timeout=120)["status"] == "ok"
    long.forget()
