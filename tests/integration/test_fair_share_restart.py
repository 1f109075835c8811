"""Parked runs survive a Redis restart (append-only file): none lost, none run twice."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import docker
import pytest
import redis

from bench.launch import start_worker, wait_until
from tasks.worker import keys
from tasks.worker.limits import set_limit
from tests.integration.helpers import SHORT_LIMITS, client_app, double_runs, final_state

pytestmark = pytest.mark.integration
TENANT = "restart"


def creations(client: docker.DockerClient, since: float, run_id: str) -> int:
    """How many tool containers the engine created for this run since then."""
    labels = [f"studio.tenant={TENANT}", f"studio.run={run_id}", "studio.role=tool"]
    events = client.events(
        since=int(since), until=int(time.time()) + 1, decode=True,
        filters={"type": "container", "event": "create", "label": labels},
    )  # fmt: skip
    return sum(1 for _ in events)


@pytest.mark.parametrize("moment", ["as_runs_park", "while_the_first_tool_runs"])
def test_runs_parked_across_a_redis_restart_all_run_once(
    moment: str, own_redis: tuple[str, Any], docker_client: docker.DockerClient, busybox_image: str, tmp_path: Path
) -> None:
    url, restart = own_redis
    producer = client_app(url)
    with redis.Redis.from_url(url) as conn:
        set_limit(conn, TENANT, 1)
    env = {"TOOLRUNNER_BROKER_URL": url, "TOOLRUNNER_LEASE_TTL_SECONDS": "9", **SHORT_LIMITS}
    worker = start_worker(tmp_path, "restart", concurrency=3, env=env, client=producer)
    started = time.time()
    with double_runs(docker_client, TENANT) as overlaps:
        try:
            params = {"script": "sleep 2; echo ok > /outputs/out.txt"}
            handles = [
                producer.send_task("toolrunner.run_tool", ("script", TENANT, f"r-{i}", params)) for i in range(4)
            ]
            with redis.Redis.from_url(url) as conn:
                wait_until(lambda: conn.hlen(keys.PARKED()) >= 2, 60, "runs to park behind the cap of 1")
                parked = {v.decode() for v in conn.hkeys(keys.PARKED())}
            if moment == "while_the_first_tool_runs":  # its late ack crosses the reconnect (tasks/worker/broker.py)
                with_label = {"label": ["studio.role=tool", f"studio.tenant={TENANT}"]}
                wait_until(lambda: docker_client.api.containers(filters=with_label), 60, "the first run's tool")
            restart(pause=1.0)
            states = [final_state(producer, h.id) for h in handles]
        finally:
            worker.stop()
            producer.close()
    assert "Unrecoverable error" not in worker.log_text()
    assert overlaps == []
    assert states == ["SUCCESS"] * len(handles)
    parked_runs = [f"r-{i}" for i, h in enumerate(handles) if h.id in parked]
    assert len(parked_runs) >= 2
    assert [creations(docker_client, started, run) for run in parked_runs] == [1] * len(parked_runs)
