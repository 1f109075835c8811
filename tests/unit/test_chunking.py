"""How targets split into chunks (pure), how a request becomes a parent, and a chunk's outcome counted once."""

from __future__ import annotations

import base64
import ipaddress
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from hypothesis import given
from hypothesis import strategies as st

import tasks.webhooks
from config import Settings
from tasks.artifacts import ArtifactConfig, Artifacts, open_artifacts
from tasks.errors import ChunkMergeError, TaskInputError
from tasks.service import RunPlan, RunRequest, plan_run
from tasks.service.plan import MAX_CHUNKS, chunk_params, is_parent
from tasks.tools import load_catalogue
from tasks.tools.chunking import Unit, split, weight
from tasks.webhooks import outbox
from tasks.worker import chunks, keys
from tasks.worker.merge import MAX_MERGES, merge
from tests.conftest import database_url, flushed_database

CATALOGUE = load_catalogue()


def plan(tool: str, params: dict[str, object], cap: int = 1_000_000) -> RunPlan:
    request = RunRequest(tool, "t", "r", params)
    return plan_run(CATALOGUE, request, max_input_bytes=1 << 26, max_timeout_seconds=3600, max_chunked_targets=cap)


def addresses(chunk: list[str]) -> list[str]:
    return [str(a) for t in chunk for a in ipaddress.ip_network(t, strict=False)]


@given(st.lists(st.integers(0, 300), min_size=1, max_size=40), st.sampled_from([1, 4, 16, 64]))
def test_chunks_hold_at_most_their_size_and_together_every_address_in_order(prefixes: list[int], size: int) -> None:
    targets = [
        f"10.{i // 256}.{i % 256}.0/{24 + p % 9}" if p % 3 else f"10.9.{i}.{p % 250}" for i, p in enumerate(prefixes)
    ]
    pieces = list(split(targets, size, Unit.ADDRESSES))
    assert all(pieces) and all(weight(c, Unit.ADDRESSES) <= size for c in pieces)
    assert addresses(list(itertools.chain.from_iterable(pieces))) == addresses(targets)


def test_a_network_is_cut_into_aligned_sub_networks_one_at_a_time() -> None:
    first = next(split(["10.0.0.0/8"], 64, Unit.ADDRESSES))  # 16,777,216 addresses: never listed
    assert first == ["10.0.0.0/26"]
    assert list(split(["a", "b", "c"], 2, Unit.ITEMS)) == [["a", "b"], ["c"]]


def test_a_request_over_its_chunk_is_a_parent_whose_chunks_are_each_validated() -> None:
    targets = [f"127.0.1.{i}" for i in range(1, 201)]
    parent = plan("nmap", {"targets": targets, "ports": "80", "chunk_size": 64})
    assert parent.chunked is not None and (parent.chunked.chunks, parent.chunked.size) == (4, 64)
    assert len(parent.params.targets) == 200  # type: ignore[attr-defined]  # the scope check reads them all
    assert [len(c["targets"]) for c in chunk_params(parent)] == [64, 64, 64, 8]
    assert all(c["ports"] == "80" and "chunk_size" not in c for c in chunk_params(parent))
    assert plan("nmap", {"targets": targets, "ports": "80"}).chunked is None, "under nmap's own chunk of 1024"
    with pytest.raises(TaskInputError, match=r"chunk 3 .*'not a host!'"):
        plan("nmap", {"targets": [*targets, "not a host!"], "ports": "80", "chunk_size": 64})


def test_a_chunked_run_is_capped_and_a_tool_that_does_not_split_refuses_chunk_size() -> None:
    with pytest.raises(TaskInputError, match="TOOLRUNNER_MAX_CHUNKED_TARGETS"):
        plan("nmap", {"targets": ["10.0.0.0/16"], "ports": "80"}, cap=65535)
    with pytest.raises(TaskInputError, match="ffuf does not split"):
        plan("ffuf", {"url": "http://127.0.0.1/FUZZ", "wordlist": ["a"], "chunk_size": 2})
    assert not is_parent(CATALOGUE["nmap"], {"targets": ["10.0.0.0/24"], "chunk_size": "x"}), "the model says why"


def test_a_forged_chunk_marker_names_no_chunk() -> None:
    real = chunks.ChunkOf("parent-id", 3, 1)
    assert chunks.ChunkOf.read(real.as_kwarg(), real.task_id) == real
    assert chunks.ChunkOf.read(real.as_kwarg(), "some-other-task-id") is None
    assert chunks.ChunkOf.read({"parent": "p", "index": "3"}, chunks.chunk_task_id("p", 3)) is None


@pytest.fixture
def conn(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_database(database_url(redis_url, 12)) as client:
        yield client


def test_each_chunk_counts_once_and_only_the_last_completes_the_parent(conn: redis.Redis) -> None:
    settings = Settings()
    conn.hset(keys.CHUNKS("p"), mapping={"tenant_id": "t", "total": "2", "state": "running"})
    first = chunks.ChunkOf("p", 0)
    assert not chunks.record(conn, settings, first, "ok", "{}", 3).completed
    again = chunks.record(conn, settings, first, "tool_failed", "{}", 5)  # a duplicate message's end
    assert (again.done, again.findings, again.completed) == (1, 3, False)
    last = chunks.record(conn, settings, chunks.ChunkOf("p", 1), "timed_out", "{}", 1)
    assert (last.state, last.done, last.total, last.findings, last.completed) == ("merging", 2, 2, 4, True)
    assert not chunks.record(conn, settings, chunks.ChunkOf("p", 1), "ok", "{}", 1).completed, "completed once"
    assert conn.zscore(keys.MERGING(), "p") is not None and conn.pttl(keys.CHUNKS("p")) > 0
    assert chunks.record(conn, settings, chunks.ChunkOf("gone", 0), "ok", "{}", 0).state == ""


def test_a_cancelled_or_merged_parent_records_nothing_more(conn: redis.Redis) -> None:
    settings = Settings()
    for state in ("cancelled", "done"):
        conn.hset(keys.CHUNKS(state), mapping={"tenant_id": "t", "total": "1", "state": state})
        recorded = chunks.record(conn, settings, chunks.ChunkOf(state, 0), "ok", "{}", 3)
        assert (recorded.state, recorded.done, recorded.completed) == (state, 0, False)
        assert not conn.exists(keys.CHUNK_OUTCOMES(state)) and conn.ttl(keys.CHUNKS(state)) == -1, "nothing renewed"


def test_a_request_asking_for_more_chunks_than_a_run_makes_gets_a_larger_size_and_a_notice() -> None:
    networks = [f"10.{i}.0.0/16" for i in range(15)]  # 983,040 addresses
    parent = plan("nmap", {"targets": networks, "ports": "80", "chunk_size": 1})
    assert parent.chunked is not None and parent.chunked.size == 64 and parent.chunked.chunks == 15_360 <= MAX_CHUNKS
    assert "chunk_size=1 was raised to 64: a run makes at most 20000 chunks" in parent.notices


@pytest.fixture
def merging(conn: redis.Redis, redis_url: str, tmp_path: Path) -> Iterator[tuple[Celery, Artifacts]]:
    """A parent of two chunks whose outcomes are in, chunk 0's result stored, chunk 1's gone (expired)."""
    url = database_url(redis_url, 12)
    app = Celery("merge", set_as_current=False, broker=url, backend=url)
    conn.hset(keys.CHUNKS("p"), mapping={"tenant_id": "t", "tool": "nmap", "run_id": "r", "total": "2",
                                         "state": "merging", "started": "0", "notices": "[]"})  # fmt: skip
    for index in (0, 1):
        task_id = chunks.chunk_task_id("p", index)
        outcome = {"index": index, "task_id": task_id, "status": "ok", "stats": {"findings": 1}}
        conn.hset(keys.CHUNK_OUTCOMES("p"), str(index), json.dumps(outcome))
    app.backend.store_result(chunks.chunk_task_id("p", 0), {"findings": [{"host": "a"}]}, "SUCCESS")
    yield app, open_artifacts(ArtifactConfig(url=f"file://{tmp_path}"))
    app.backend.client.connection_pool.disconnect()
    app.close()


def test_a_merge_missing_a_chunks_findings_fails_whole_and_after_its_tries_ends_the_parent_failed(
    conn: redis.Redis, merging: tuple[Celery, Artifacts]
) -> None:
    app, artifacts = merging
    tasks.webhooks.set("t", "https://hooks.example/t", tasks.webhooks.new_secret(), connection=conn)
    for _ in range(MAX_MERGES - 1):
        with pytest.raises(ChunkMergeError, match="result is gone"):
            merge(app, conn, Settings(), artifacts, "p")
        assert app.AsyncResult("p").state == "PENDING", "no partial result is stored"
        assert not conn.exists(keys.MERGE_LEASE("p")), "its lease goes with it"
    assert merge(app, conn, Settings(), artifacts, "p") is False
    assert app.AsyncResult("p").state == "FAILURE" and "could not be merged" in str(app.AsyncResult("p").result)
    assert chunks.stored(conn, "p")["state"] == "failed" and not conn.exists(keys.CHUNK_OUTCOMES("p"))
    stored = outbox.load(conn, tasks.webhooks.event_id("t", "p"))  # the tenant hears of it once, when it ended
    assert stored is not None and stored.event.type == "run.failed"
    assert json.loads(stored.event.body)["data"]["reason"].startswith("the chunks' findings could not be merged")


def test_a_second_merge_while_one_holds_the_lease_does_nothing(
    conn: redis.Redis, merging: tuple[Celery, Artifacts]
) -> None:
    app, artifacts = merging
    conn.set(keys.MERGE_LEASE("p"), "another merge", ex=60)
    assert merge(app, conn, Settings(), artifacts, "p") is False
    assert chunks.stored(conn, "p")["state"] == "merging" and app.AsyncResult("p").state == "PENDING"


def queued(conn: redis.Redis, queue: str, task: str = "toolrunner.run_tool") -> dict[str, list[object]]:
    """The messages of a task in a queue of the Redis broker: task id -> the task's args."""
    found = {}
    for raw in conn.lrange(queue, 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == task:
            found[message["headers"]["id"]] = json.loads(base64.b64decode(message["body"]))[0]
    return found


def test_a_window_claimed_by_a_worker_that_died_goes_out_again_and_each_end_lets_one_more_out(
    conn: redis.Redis, redis_url: str
) -> None:
    url, settings = database_url(redis_url, 12), Settings()
    app = Celery("window", set_as_current=False, broker=url, backend=url)
    conn.hset(keys.CHUNKS("p"), mapping={
        "tenant_id": "t", "tool": "nmap", "run_id": "r", "task": "toolrunner.run_tool", "queue": "q", "total": "4",
        "state": "running", "sent": "2", "field": "targets", "params": '{"ports": "80"}', "files": "null",
    })  # fmt: skip
    conn.hset(keys.CHUNK_PLAN("p"), mapping={str(i): json.dumps([f"10.0.0.{i}"]) for i in range(4)})
    conn.zadd(keys.CHUNK_CLAIMS(), {"p|0|2": 0})  # its first window, claimed by a worker that died before publishing
    conn.hset(keys.LIMITS(), "t", 1)  # the tenant's cap: a window of 2
    try:
        assert chunks.republish_claims(app, conn, older_than_ms=1) == 2
        first = {chunks.chunk_task_id("p", i): ["nmap", "t", "r", {"ports": "80", "targets": [f"10.0.0.{i}"]}, None]
                 for i in (0, 1)}  # fmt: skip
        assert queued(conn, "q") == first and conn.zcard(keys.CHUNK_CLAIMS()) == 0
        assert chunks.republish_claims(app, conn, older_than_ms=int(time.time() * 1000)) == 0, "nothing claimed"
        for index, out in ((0, 3), (1, 4), (2, 4), (3, 4)):  # each end lets one more out, up to the last
            chunks.finish(app, conn, settings, chunks.ChunkOf("p", index), "id", None, "tool_failed", "exit 1")
            assert not conn.hexists(keys.CHUNK_PLAN("p"), str(index)), "a counted chunk's targets go"
            assert set(queued(conn, "q")) == {chunks.chunk_task_id("p", i) for i in range(out)}
            assert conn.hget(keys.CHUNKS("p"), "sent") == str(out).encode()
        assert chunks.stored(conn, "p")["state"] == "merging" and conn.zcard(keys.CHUNK_CLAIMS()) == 0
        assert list(queued(conn, "q", chunks.MERGE_TASK).values()) == [["p"]], "the last end asks for the merge"
    finally:
        conn.delete("q")
        app.close()
