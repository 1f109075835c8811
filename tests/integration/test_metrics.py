"""The worker's Prometheus metrics, scraped from a real worker after real runs."""

from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.launch import Worker
from tasks import run_tool

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
