"""The worker's Prometheus metrics, scraped from a real worker after real runs."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.launch import Worker, wait_until
from tasks import run_tool, sweep_daemon
from tasks.worker import keys

pytestmark = pytest.mark.integration


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the metrics page, keyed by name and sorted labels."""
    families = text_string_to_metric_families(requests.get(url, timeout=10).text)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_runs_are_counted_by_tool_and_status_with_volumes_stages_and_bytes(worker: Worker) -> None:
    before = scrape(worker.metrics_url)
    ok = {"script": "cat /inputs/in.txt > /outputs/out.txt"}
    run_tool.delay("script", "acme", "metrics-1", ok, {"in.txt": "12345"}).get(timeout=120)
    run_tool.delay("script", "acme", "metrics-2", {"script": "exit 4"}).get(timeout=120)
    after = scrape(worker.metrics_url)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("toolrunner_tool_runs_total", tool="script", status="ok") == 1
    assert delta("toolrunner_tool_runs_total", tool="script", status="tool_failed") == 1
    assert delta("toolrunner_volumes_created_total") == 4
    assert delta("toolrunner_volumes_removed_total") == 4
    assert delta("toolrunner_volume_cleanup_failures_total") == 0
    assert delta("toolrunner_input_bytes_total") == 5
    assert delta("toolrunner_output_bytes_total") == 5
    assert delta("toolrunner_tool_duration_seconds_count", tool="script") == 2
    for stage in ("preparing_inputs", "running", "reading_outputs", "cleaning_up"):
        assert delta("toolrunner_stage_duration_seconds_count", stage=stage) == 2


def test_the_health_gauges_the_alert_rules_read_are_served_by_a_real_worker(worker: Worker, redis_url: str) -> None:
    before_sweep = time.time()
    sweep_daemon.delay(24).get(timeout=120)
    samples = scrape(worker.metrics_url)
    now = time.time()

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    # The reaper passes at start and every 60 s (the default interval); the sweep just ran.
    assert now - 90 < value("toolrunner_reaper_last_run_timestamp_seconds") <= now
    assert before_sweep <= value("toolrunner_sweep_last_success_timestamp_seconds") <= now
    spool = str(Path(tempfile.gettempdir()))
    assert abs(value("toolrunner_free_disk_bytes", path=spool) - shutil.disk_usage(spool).free) < 1 << 30
    paths = {dict(labels)["path"] for name, labels in samples if name == "toolrunner_free_disk_bytes"}
    assert paths == {spool, urlsplit(os.environ["TOOLRUNNER_ARTIFACT_URL"]).path}  # the session's file:// store
    # Fleet-wide, from Redis: this worker's 4 slots at least (workers of other tests may still be registered), and
    # the oldest parked run as Redis holds it (none, unless an earlier test left one parked).
    # A test before may have flushed the database: the worker registers again within a third of a lease TTL.
    wait_until(lambda: scrape(worker.metrics_url)[("toolrunner_slots", ())] >= 4, 15, "this worker's slots")
    samples = scrape(worker.metrics_url)
    assert value("toolrunner_slots") >= 4 and 0 <= value("toolrunner_slots_used") <= value("toolrunner_slots")
    with redis.Redis.from_url(redis_url) as conn:
        oldest = conn.zrange(keys.PARKED_AT(), 0, 0, withscores=True)
    assert value("toolrunner_oldest_waiting_seconds") == pytest.approx(
        now - oldest[0][1] / 1000 if oldest else 0, abs=5
    )
    # This worker's Docker client uses no TLS (the local socket): no certificate, no sample.
    assert not [name for name, _ in samples if name.startswith("toolrunner_dind_certificate")]
