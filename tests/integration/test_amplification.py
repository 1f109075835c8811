"""Outputs that amplify into findings stay bounded in the worker's memory and in Redis, and lose no count."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from bench.launch import Worker, start_worker
from tasks import app, run_tool
from tests.integration.helpers import peak_rss, pool_process

pytestmark = pytest.mark.integration
WAIT = 300
MIB = 1 << 20


@pytest.fixture(scope="module")
def lone_worker(redis_url: str, busybox_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A worker with one pool process, so that process's peak RSS (VmHWM) belongs to the runs sent here."""
    running = start_worker(tmp_path_factory.mktemp("flood"), "flood", concurrency=1, queues="flood")
    yield running
    running.stop()


def flood(params: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Run the flood tool on the lone worker; its result and the size of what Redis stored."""
    handle = run_tool.apply_async(("flood", "acme", "flood", params), queue="flood")
    result: dict[str, Any] = handle.get(timeout=WAIT)
    with redis.Redis.from_url(app.conf.result_backend) as conn:
        stored = int(conn.strlen(f"celery-task-meta-{handle.id}"))
    return result, stored


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("params", "findings", "truncated"),
    [
        # 7 hosts x 65535 open ports: a 46 MiB report, 458,745 findings (the review's 62.5 MiB had 459 k).
        ({"format": "nmap", "count": 7}, 7 * 65535, True),
        # 100,000 ffuf hits: an 18 MiB report.
        ({"format": "ffuf", "count": 100_000}, 100_000, True),
        # A 16 MiB report of `{}` entries (5.6 M before): entries without url and status are no findings.
        ({"format": "ffuf-empty", "count": 5_500_000}, 0, False),
    ],
)
def test_an_amplifying_report_keeps_the_pool_process_and_the_stored_result_small_and_counts_every_finding(
    lone_worker: Worker, params: dict[str, Any], findings: int, truncated: bool
) -> None:
    flood({"format": "ffuf", "count": 1})  # the pool process has imported everything a run needs
    pid = pool_process(lone_worker)
    before = peak_rss(pid)
    result, stored = flood(params)
    assert pool_process(lone_worker) == pid, "the pool process was replaced mid-test"
    grown = peak_rss(pid) - before
    assert result["status"] == "ok", result["reason"]
    assert result["stats"]["findings"] == findings
    assert result["findings_truncated"] is truncated
    assert len(result["findings"]) < findings or not truncated
    assert grown <= 200 * MIB, f"the pool process's peak RSS grew by {grown / MIB:.0f} MiB"
    assert stored < 1.5 * MIB, f"Redis stored {stored / MIB:.2f} MiB for one result"


def test_a_report_the_parser_cannot_read_ends_tool_failed_keeping_what_parsed(lone_worker: Worker) -> None:
    result, _ = flood({"format": "ffuf-deep", "count": 100_000})
    assert result["status"] == "tool_failed"
    assert "could not be parsed after 1 finding(s)" in result["reason"]
    assert [f["url"] for f in result["findings"]] == ["http://127.0.0.1/ok"]
