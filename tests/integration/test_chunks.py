"""Chunked runs through real workers: nmap over 300 loopback addresses, split, merged, cancelled, retried.

Each 127.0.x.y is a loopback address on Linux: the targets listen on those addresses (never on 0.0.0.0), one in
three with an open port, and nmap's containers reach them over the host's network.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import pytest
from celery.result import AsyncResult

from bench.launch import Worker, free_port, start_worker, wait_until
from tasks import app, run_tool
from tasks.worker import keys
from tasks.worker.cancel import cancel_run
from tasks.worker.chunks import chunk_task_id
from tasks.worker.limits import set_limit, unset_limit
from tasks.worker.targets import OFFLOAD_AFTER, targets_task_id
from tests.integration.helpers import tool_containers

pytestmark = pytest.mark.integration
QUEUE = "chunks"
TENANT = "chunky"
ADDRESSES = [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(300)]


@pytest.fixture(scope="module")
def chunk_worker(worker: Worker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A worker of three slots on a queue of its own; its tools reach loopback through the host's network."""
    env = {"TOOLRUNNER_TOOL_NETWORK": "host"}
    running = start_worker(tmp_path_factory.mktemp("chunks"), "chunks", env=env, queues=QUEUE, concurrency=3)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def targets() -> Iterator[int]:
    """A port open on every third of the 300 addresses (listening on that address alone); closed on the rest."""
    port = free_port()
    sockets = []
    for address in ADDRESSES[::3]:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((address, port))
        server.listen(64)
        sockets.append(server)
    yield port
    for server in sockets:
        server.close()


def nmap(run: str, port: int, queue: str = QUEUE, **params: Any) -> AsyncResult:
    request = {"targets": ADDRESSES, "ports": str(port), **params}
    return run_tool.apply_async(("nmap", TENANT, run, request), queue=queue)


def ports(result: dict[str, Any]) -> Counter[tuple[str, int, str]]:
    return Counter((f["address"], f["port"], f["state"]) for f in result["findings"])


def test_nmap_over_300_addresses_chunked_by_64_finds_what_one_run_finds(
    scoped: Callable[..., None], chunk_worker: Worker, targets: int
) -> None:
    scoped(TENANT)
    whole = nmap("whole", targets).get(timeout=180)
    chunked = nmap("chunked", targets, chunk_size=64).get(timeout=180)
    assert whole["status"] == chunked["status"] == "ok"
    assert "chunks" not in whole
    assert {k: chunked["chunks"][k] for k in ("total", "ok", "tool_failed", "timed_out", "cancelled")} == {
        "total": 5, "ok": 5, "tool_failed": 0, "timed_out": 0, "cancelled": 0,
    }  # fmt: skip
    assert ports(chunked) == ports(whole) and len(ports(whole)) == 300
    assert sum(1 for f in chunked["findings"] if f["state"] == "open") == 100
    assert chunked["stats"]["findings"] == whole["stats"]["findings"] == 300
    assert [a["name"] for a in chunked["artifacts"]] == ["findings.jsonl"]
    assert (chunked["tool"], chunked["tenant_id"], chunked["run_id"]) == ("nmap", TENANT, "chunked")


def test_a_run_of_more_targets_than_a_message_carries_sends_them_beside_it_and_runs_them_all(
    scoped: Callable[..., None], chunk_worker: Worker, targets: int
) -> None:
    scoped(TENANT)
    many = [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(OFFLOAD_AFTER + 76)]  # 1,100 addresses
    request = {"targets": many, "ports": str(targets), "chunk_size": 512}
    parent = run_tool.apply_async(("nmap", TENANT, "many", request), queue=QUEUE)
    stored = app.artifacts.list_artifacts(targets_task_id(parent.id), tenant=TENANT)
    assert [a.name for a in stored] == ["targets.json"] and stored[0].size > 10_000
    result = parent.get(timeout=180)
    assert result["status"] == "ok" and result["chunks"]["total"] == 3
    assert {f["address"] for f in result["findings"]} == set(many)
    assert sum(f["state"] == "open" for f in result["findings"]) == 100  # the 300 addresses' listeners


def test_cancelling_a_parent_mid_way_stops_every_chunk_and_leaves_nothing_on_the_engine(
    scoped: Callable[..., None], chunk_worker: Worker, targets: int, docker_client: docker.DockerClient
) -> None:
    scoped(TENANT)
    slow = nmap("slow", targets, chunk_size=32, max_rate=1)  # 32 probes at 1 a second: long enough to cancel
    wait_until(lambda: tool_containers(docker_client, TENANT), 60, "a chunk's container")
    progress = slow.info
    assert slow.state == "PROGRESS" and progress["stage"] == "chunks" and progress["chunks_total"] == 10
    said = cancel_run(slow.id, tenant_id=TENANT)
    cancelled = time.monotonic()
    assert "every chunk" in said.message
    wait_until(lambda: not tool_containers(docker_client, TENANT), 5, "every chunk's container gone")
    assert time.monotonic() - cancelled <= 5
    assert slow.state == "REVOKED"

    def ended() -> bool:  # running ones stopped (their state is written as they clean up); queued ones never start
        return {AsyncResult(chunk_task_id(slow.id, i)).state for i in range(10)} <= {"REVOKED", "PENDING"}

    wait_until(ended, 30, "every chunk REVOKED or never started")
    wait_until(lambda: not docker_client.volumes.list(filters={"label": f"studio.tenant={TENANT}"}), 30, "volumes")


def test_a_chunk_that_times_out_runs_again_once_then_the_parent_reports_it(
    scoped: Callable[..., None], chunk_worker: Worker, targets: int, tmp_path: Path
) -> None:
    scoped(TENANT)
    result = nmap("late", targets, chunk_size=150, max_rate=1, timeout_seconds=1).get(timeout=180)
    assert result["status"] == "timed_out"
    assert result["chunks"]["total"] == 2 and result["chunks"]["timed_out"] == 2
    failed = result["chunks"]["failed"]
    assert [f["index"] for f in failed] == [0, 1]
    assert all(f["task_id"] == chunk_task_id(result["task_id"], f["index"], 1) for f in failed), "its retry's"
    attempts = [chunk_task_id(result["task_id"], i, a) for i in (0, 1) for a in (0, 1)]
    merged = lambda: all(AsyncResult(a).state == "PENDING" for a in attempts)  # noqa: E731
    wait_until(merged, 10, "each attempt's own result deleted once merged (right after the parent's is stored)")
    assert "chunk 0" in result["reason"]


@contextmanager
def tool_starts(client: docker.DockerClient, tenant: str) -> Iterator[Counter[str]]:
    """How many tool containers the engine started per task id (its events, read live: the engine keeps only its
    last 256 for a later `since` query; not the code's own counters)."""
    started: Counter[str] = Counter()
    filters = {"type": "container", "event": "start", "label": [f"studio.tenant={tenant}", "studio.role=tool"]}
    stream = client.events(filters=filters, decode=True)

    def read() -> None:
        with contextlib.suppress(Exception):  # the stream's close() ends the read with an error
            for event in stream:
                started[event["Actor"]["Attributes"]["studio.task"]] += 1

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield started
    finally:
        time.sleep(1)  # the last events on their way
        stream.close()
        reader.join(timeout=10)


def test_a_worker_sigkilled_while_chunks_run_costs_no_finished_chunk_and_the_parent_completes_elsewhere(
    scoped: Callable[..., None], targets: int, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    scoped(TENANT)
    env, queue = {"TOOLRUNNER_TOOL_NETWORK": "host"}, "chunks-crash"
    doomed = start_worker(tmp_path, "chunks-doomed", env=env, queues=queue, concurrency=2)
    survivor: Worker | None = None
    try:
        with tool_starts(docker_client, TENANT) as starts:
            parent = nmap("crash", targets, queue, chunk_size=32, max_rate=20)  # 10 chunks of ~2 s each
            outcomes = keys.CHUNK_OUTCOMES(parent.id)
            wait_until(lambda: app.redis.hlen(outcomes) >= 2 and tool_containers(docker_client, TENANT), 90, "chunks")
            doomed.kill_group()
            finished = {int(i) for i in app.redis.hkeys(outcomes)}
            survivor = start_worker(tmp_path, "chunks-survivor", env=env, queues=queue, concurrency=2)
            result = parent.get(timeout=300)
    finally:
        for worker in (doomed, survivor):
            if worker is not None:
                worker.stop()
    assert result["status"] == "ok" and result["chunks"]["ok"] == 10
    assert Counter(f["state"] for f in result["findings"]) == {"open": 100, "closed": 200}
    ids = {chunk_task_id(parent.id, i): i for i in range(10)}
    assert set(starts) == set(ids), "every chunk ran, under its first attempt's id (none failed)"
    assert all(starts[task_id] == 1 for task_id, i in ids.items() if i in finished), "a finished chunk never again"
    assert max(starts.values()) <= 2, f"a chunk in flight when its worker died runs at most twice: {starts}"


def test_a_parent_keeps_twice_its_tenants_cap_of_chunks_out_and_the_rest_in_its_plan(
    scoped: Callable[..., None], chunk_worker: Worker, targets: int
) -> None:
    scoped(TENANT)
    set_limit(app.redis, TENANT, 1)  # a window of 2: five chunks go out two at a time, one more as each ends
    try:
        parent = nmap("windowed", targets, chunk_size=64)
        record, plan = keys.CHUNKS(parent.id), keys.CHUNK_PLAN(parent.id)
        out: list[tuple[int, int]] = []
        while not parent.ready():
            with app.redis.pipeline() as pipe:  # one transaction: a consistent view
                (sent, done), left = pipe.hmget(record, ["sent", "done"]).hlen(plan).execute()
            if sent is not None:
                out.append((int(sent) - int(done or 0), left + int(done or 0)))
            time.sleep(0.05)
        result = parent.get(timeout=180)
    finally:
        unset_limit(app.redis, TENANT)
    assert result["status"] == "ok" and result["chunks"]["ok"] == 5 and len(ports(result)) == 300
    assert max(o for o, _ in out) == 2, f"chunks out (published, not counted) never above the window: {out}"
    assert {planned for _, planned in out} == {5}, "the plan holds every chunk not yet counted"
    assert not app.redis.exists(plan), "the plan goes with the merge"
    assert not [m for m in app.redis.zrange(keys.CHUNK_CLAIMS(), 0, -1) if m.decode().startswith(parent.id)]
