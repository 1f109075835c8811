"""One Redis schema: a workload through a real worker leaves only keys that tasks/worker/keys.py declares (or that
Celery and Kombu own), and every declared key that is meant to expire carries a TTL."""

from __future__ import annotations

import threading
from pathlib import Path

import docker
import pytest
import redis
from celery import Celery

import tasks.webhooks
from bench.launch import start_worker, wait_until
from config import Settings, celery_config, load_settings
from tasks.worker import keys
from tasks.worker.cancel import cancel
from tasks.worker.limits import set_limit
from tests.conftest import REDIS_URL, database_url, flushed_database

pytestmark = pytest.mark.integration
SCHEMA_DB = database_url(REDIS_URL, 9)
TENANT = "schema"


def test_a_workload_leaves_only_declared_keys_and_each_that_should_expire_has_a_ttl(
    docker_client: docker.DockerClient, busybox_image: str, tmp_path: Path
) -> None:
    seen: set[str] = set()
    with flushed_database(SCHEMA_DB) as conn:
        producer = Celery("schema-client", set_as_current=False)
        producer.conf.update(celery_config(load_settings()), broker_url=SCHEMA_DB, result_backend=SCHEMA_DB)
        set_limit(conn, TENANT, 1)  # one at a time: the others park, are picked and dispatched
        # Its events go nowhere (a loopback receiver is refused): recorded, attempted, logged and retried.
        tasks.webhooks.set(TENANT, "https://127.0.0.1:9/hook", tasks.webhooks.new_secret(), connection=conn)
        worker = start_worker(
            tmp_path, TENANT, concurrency=2, env={"TOOLRUNNER_BROKER_URL": SCHEMA_DB}, client=producer,
            queues="celery,webhooks",
        )  # fmt: skip
        stop = threading.Event()
        sampler = threading.Thread(target=_sample, args=(conn, seen, stop), daemon=True)
        sampler.start()
        try:
            cached = {"script": "echo ok > /outputs/out.txt", "cache_max_age_seconds": 600}
            runs = [
                ("script", TENANT, "holder", {"script": "sleep 2"}),
                ("script", TENANT, "cached-1", cached),
                ("script", TENANT, "cached-2", cached),  # a hit, or a wait behind the first
                ("script", TENANT, "failed", {"script": "exit 3"}),
                ("absent", TENANT, "errored", {}),  # FAILURE: an image that exists nowhere
                ("script", TENANT, "cancelled", {"script": "true"}),
            ]
            handles = [producer.send_task("toolrunner.run_tool", run) for run in runs]
            wait_until(lambda: conn.hexists(keys.PARKED(), handles[-1].id), 60, "the last run to park")
            cancel(producer, conn, Settings(broker_url=SCHEMA_DB), handles[-1].id, TENANT)
            for handle in handles:
                handle.get(timeout=120, propagate=False)
            wait_until(lambda: conn.exists(keys.WEBHOOK_LOG(TENANT)), 60, "a webhook attempt to be logged")
        finally:
            stop.set()
            sampler.join()
            worker.stop()
            producer.close()
        left = {_text(k) for k in conn.scan_iter(count=1000)}
        ttls = {key: conn.pttl(key) for key in left}
    undeclared = sorted(k for k in seen | left if keys.declared(k) is None)
    assert not undeclared, f"keys the schema does not declare: {undeclared}"
    untimed = sorted(k for k in left if _expiring(k) and ttls[k] < 0)
    assert not untimed, f"keys meant to expire that carry no TTL: {untimed}"
    kinds = {entry.pattern for k in seen | left if isinstance(entry := keys.declared(k), keys.Key)}
    webhooks = (keys.WEBHOOK_ENDPOINTS, keys.WEBHOOK_EVENT, keys.WEBHOOK_DUE, keys.WEBHOOK_LOG)
    for expected in (keys.IDENTITY, keys.DELIVERIES, keys.RUNNING, keys.LEASES, keys.PARKED, keys.DONE, keys.FLIGHT,
                     *webhooks):  # fmt: skip
        assert expected.pattern in kinds, f"the workload never wrote {expected.pattern}: it checks less than it says"


def _expiring(key: str) -> bool:
    entry = keys.declared(key)
    return isinstance(entry, keys.Key) and entry.expires


def _sample(conn: redis.Redis, seen: set[str], stop: threading.Event) -> None:
    while not stop.wait(0.05):
        seen.update(_text(k) for k in conn.scan_iter(count=1000))


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key
