"""Host politeness with a real worker pair, real Redis, Docker and ffuf, seen from the scanned servers' side.

Each target is a bench.recorder server on loopback that records every request by run (the first path segment)
and time. The workers run with the production host limits (Settings' defaults: 2 runs and 50 req/s a host), not
the loose ones the rest of the suite gets from bench/loopback.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
import redis
from celery import Celery
from celery.result import AsyncResult

import tasks.hosts
from bench.launch import Worker, start_worker, wait_until
from bench.recorder import Recorder, peak_requests_per_second, peak_runs_at_once, run_spans, summarize
from config import Settings, celery_config, load_settings
from tasks.worker import keys
from tasks.worker.cancel import cancel
from tests.conftest import REDIS_URL
from tests.integration.helpers import tool_containers

pytestmark = pytest.mark.integration
POLITE_DB = REDIS_URL.rsplit("/", 1)[0] + "/6"
DEFAULTS = {name: Settings.model_fields[name].default for name in ("host_max_running", "host_max_rps")}
ENV = {
    "TOOLRUNNER_BROKER_URL": POLITE_DB,
    "TOOLRUNNER_TOOL_NETWORK": "host",  # ffuf reaches the recorders on loopback
    "TOOLRUNNER_HOST_MAX_RUNNING": str(DEFAULTS["host_max_running"]),
    "TOOLRUNNER_HOST_MAX_RPS": str(DEFAULTS["host_max_rps"]),
}
TENANTS = ("pa", "pb", "pc")


@pytest.fixture
def producer(scoped: Callable[..., None]) -> Iterator[Celery]:
    with redis.Redis.from_url(POLITE_DB) as conn:
        conn.flushdb()
    scoped(*TENANTS, "pw", url=POLITE_DB)
    app = Celery("polite-client", set_as_current=False)
    app.conf.update(celery_config(load_settings()), broker_url=POLITE_DB, result_backend=POLITE_DB)
    yield app
    app.close()


@pytest.fixture
def workers(producer: Celery, tmp_path: Path) -> Iterator[Callable[..., list[Worker]]]:
    started: list[Worker] = []

    def start(*names: str) -> list[Worker]:
        for name in names:
            started.append(start_worker(tmp_path / name, name, concurrency=3, env=ENV, client=producer))
        return started

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def shared() -> Iterator[Recorder]:
    with Recorder("127.0.0.1") as server:
        yield server


def fuzz(producer: Celery, tenant: str, server: Recorder, label: str, words: int) -> AsyncResult:
    wordlist = [f"w{i:04}" for i in range(words)]
    params = {"url": f"{server.url}/{label}/FUZZ", "wordlist": wordlist, "timeout_seconds": 300}
    return producer.send_task("toolrunner.run_tool", ("ffuf", tenant, label, params))


def waiting_for_host(run: AsyncResult) -> str | None:
    info = run.info if run.state == "PROGRESS" else None
    return info.get("host") if isinstance(info, dict) and info.get("stage") == "waiting_for_host" else None


def test_three_tenants_never_put_more_than_the_cap_or_the_budget_on_one_host_while_another_host_goes_ahead(
    producer: Celery, workers: Callable[..., list[Worker]], shared: Recorder
) -> None:
    workers("polite-a", "polite-b")
    with Recorder("127.0.0.2") as other:
        runs = [fuzz(producer, t, shared, f"{t}-{i}", 100) for i in range(2) for t in TENANTS]
        wait_until(lambda: any(waiting_for_host(r) for r in runs), 60, "a run waiting for its host")
        assert {waiting_for_host(r) for r in runs} - {None} == {"127.0.0.1"}, "the waiting host is in the progress"
        aside = [fuzz(producer, t, other, f"{t}-other", 100) for t in TENANTS[:2]]
        assert [r.get(timeout=120)["status"] for r in aside] == ["ok", "ok"]
        assert sum(r.ready() for r in runs) < len(runs), "the other host's runs did not wait for the shared host's"
        assert [r.get(timeout=240)["status"] for r in runs] == ["ok"] * 6
        seen = summarize(shared.traffic())
        assert seen.requests == 600 and seen.runs == 6
        assert seen.peak_runs_at_once <= DEFAULTS["host_max_running"], seen
        assert seen.peak_requests_per_second <= DEFAULTS["host_max_rps"] * 1.1, seen
        assert summarize(other.traffic()).requests == 200


def test_raising_a_hosts_cap_at_run_time_takes_effect_at_the_next_admission(
    producer: Celery, workers: Callable[..., list[Worker]], shared: Recorder
) -> None:
    workers("polite-a", "polite-b")
    with redis.Redis.from_url(POLITE_DB) as conn:
        tasks.hosts.set("127.0.0.1", max_running=1, max_rps=40, connection=conn)
        # Long enough (9 s at 40 req/s, 7 s at 50) that a loaded machine's uneven container starts still overlap.
        runs = [fuzz(producer, t, shared, f"{t}-grow", 360) for t in (*TENANTS, "pw")]
        wait_until(lambda: len(run_spans(shared.traffic().requests)) >= 1, 60, "the first run on the host")
        raised = time.monotonic()
        tasks.hosts.set("127.0.0.1", max_running=3, max_rps=150, connection=conn)
        assert [r.get(timeout=240)["status"] for r in runs] == ["ok"] * 4
    requests = shared.traffic().requests
    before = [r for r in requests if run_spans(requests)[r.run][0] < raised]
    assert peak_runs_at_once(before) == 1, "under the cap of 1 only one run touched the host"
    assert peak_runs_at_once(requests) == 3, "the raised cap let three runs in at the next admission"
    assert peak_requests_per_second(r.at for r in requests) <= 150 * 1.1


def test_a_sigkilled_workers_host_leases_come_back_within_the_lease_ttl(
    producer: Celery, workers: Callable[..., list[Worker]], shared: Recorder, docker_client: docker.DockerClient
) -> None:
    first, second = workers("polite-a", "polite-b")
    second.stop()
    with redis.Redis.from_url(POLITE_DB) as conn:
        tasks.hosts.set("127.0.0.1", max_running=1, connection=conn)
    held = fuzz(producer, "pa", shared, "pa-held", 20_000)  # far longer than the test: it holds the host
    wait_until(lambda: "pa-held" in run_spans(shared.traffic().requests), 60, "the first run on the host")
    waiting = fuzz(producer, "pb", shared, "pb-next", 50)
    wait_until(lambda: waiting_for_host(waiting) == "127.0.0.1", 60, "the next run to wait for the host")
    first.kill_group()
    with redis.Redis.from_url(POLITE_DB) as conn:  # its message comes back to the survivor: it must not run again
        cancel(producer, conn, load_settings(), held.id, "pa")
    for container in docker_client.api.containers(all=True, filters={"label": ["studio.tenant=pa"]}):
        docker_client.api.remove_container(container["Id"], force=True)  # its tool would go on hitting the host
    for volume in docker_client.api.volumes(filters={"label": ["studio.tenant=pa"]})["Volumes"] or []:
        docker_client.api.remove_volume(volume["Name"], force=True)
    killed = time.monotonic()
    second.process = start_worker(second.log.parent, second.name, concurrency=3, env=ENV, client=producer).process
    # The dead worker's host lease expires after the TTL (defaults: 30 s) and the survivor's safety net, every
    # third of it, dispatches the run that waited: both bounds are the defaults'.
    ttl = Settings.model_fields["lease_ttl_seconds"].default
    bound = ttl + ttl / 3 + 20  # + a worker start and a container start
    wait_until(lambda: "pb-next" in run_spans(shared.traffic().requests), bound, "the host to come back")
    assert time.monotonic() - killed <= bound
    assert waiting.get(timeout=120)["status"] == "ok"


def test_a_cancel_of_a_run_waiting_for_its_host_ends_it_revoked_and_makes_nothing(
    producer: Celery, workers: Callable[..., list[Worker]], shared: Recorder, docker_client: docker.DockerClient
) -> None:
    workers("polite-a")
    with redis.Redis.from_url(POLITE_DB) as conn:
        tasks.hosts.set("127.0.0.1", max_running=1, connection=conn)
        long = fuzz(producer, "pa", shared, "pa-long", 300)
        wait_until(lambda: "pa-long" in run_spans(shared.traffic().requests), 60, "the first run on the host")
        made = threading.Event()
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.1):
                if docker_client.api.containers(all=True, filters={"label": ["studio.tenant=pw"]}):
                    made.set()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        waiting = fuzz(producer, "pw", shared, "pw-wait", 50)
        wait_until(lambda: waiting_for_host(waiting) == "127.0.0.1", 60, "the run to wait for its host")
        outcome = cancel(producer, conn, load_settings(), waiting.id, "pw")
        assert outcome.message.endswith("cancelled while it waited; it will not start")
        wait_until(lambda: producer.AsyncResult(waiting.id).state == "REVOKED", 30, "the waiting run to end")
        assert not conn.hexists(keys.HOST_BLOCKED(), waiting.id), "its waiting mark is gone"
        assert long.get(timeout=120)["status"] == "ok"
        stop.set()
        watcher.join()
    assert not made.is_set(), "the cancelled run made no container"
    assert tool_containers(docker_client, "pw") == 0
    assert "pw-wait" not in run_spans(shared.traffic().requests), "it never reached the host"
    assert producer.AsyncResult(waiting.id).state == "REVOKED"
