"""The soak's own instruments: they must see what the worker writes and survive what a soak does to processes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rich.console import Console

from bench.soak.__main__ import parse_args
from bench.soak.plan import Expectation, PlannedRun
from bench.soak.run import delivery_counts
from bench.soak.table import seeds_table
from bench.soak.worker import tree_rss_bytes
from config import Settings
from tasks.worker.delivery import Delivery, count_delivery
from tests.conftest import database_url, flushed_database

DB = 9


@pytest.fixture
def conn(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_database(database_url(redis_url, DB)) as client:
        yield client


def test_the_delivery_table_reads_the_counter_the_worker_writes(conn: redis.Redis) -> None:
    runs = [
        PlannedRun("t-1", "tenant-01", "run-0001", "none", "m1"),
        PlannedRun("t-2", "tenant-02", "run-0002", "none", "m2"),
    ]
    for _ in range(2):  # t-1's worker died once: delivered twice
        count_delivery(conn, Settings(), Delivery("t-1", "script", "tenant-01", "run-0001").key, 0)
    count_delivery(conn, Settings(), Delivery("t-2", "script", "tenant-02", "run-0002").key, 0)
    assert delivery_counts(conn, runs) == {"t-1": 2, "t-2": 1}


def test_the_rss_sampler_counts_a_zombie_as_nothing_instead_of_dying() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 10
        while "State:\tZ" not in Path(f"/proc/{pid}/status").read_text():
            assert time.monotonic() < deadline, "the child never became a zombie"
            time.sleep(0.01)
        assert "VmRSS:" not in Path(f"/proc/{pid}/status").read_text()
        assert tree_rss_bytes(pid) == 0
        assert tree_rss_bytes(os.getpid()) > 0
    finally:
        os.waitpid(pid, 0)


def test_several_seeds_parse_as_lists_and_ranges_and_get_one_verdict_line_each() -> None:
    assert parse_args(["--seeds", "1-3,7"])[1] == [1, 2, 3, 7]
    assert parse_args(["--seed", "5"])[1] == [5]
    table = seeds_table([(1, [Expectation("runs lost", 0, True)]), (2, [Expectation("runs lost", 3, False)])])
    console = Console(width=120, record=True)
    console.print(table)
    text = console.export_text()
    assert "runs lost: 3" in text and "NOT ok" in text
