"""deploy/prometheus/alerts.yml: valid for promtool, each rule tested firing and quiet, every metric it reads exported.

promtool comes from Debian's `prometheus` package (scripts/test installs it without starting the server).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from config import Settings
from tasks.worker.metrics import build_metrics, scrape_collectors
from tests.conftest import database_url, flushed_database, program

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES, RULE_TESTS = RULES_DIR / "alerts.yml", RULES_DIR / "alerts_test.yml"
METRIC = re.compile(r"\btoolrunner_[a-z0-9_]+")
DB = 10


def alerts() -> list[dict[str, Any]]:
    """Every alerting rule of the file."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """promtool run in the rules' directory (the test file names alerts.yml relative to itself)."""
    argv = [program("promtool", "prometheus"), *args]
    return subprocess.run(argv, cwd=RULES_DIR, capture_output=True, text=True, timeout=120, check=False)


def test_promtool_accepts_every_rule() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in checked.stdout


def test_promtools_unit_tests_of_the_rules_pass() -> None:
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def evaluations() -> Iterator[tuple[str, bool]]:
    """(alert name, whether it is expected to fire) of every evaluation in the promtool test file."""
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for evaluation in case.get("alert_rule_test", []):
            yield evaluation["alertname"], bool(evaluation.get("exp_alerts"))


@pytest.mark.parametrize("alert", [rule["alert"] for rule in alerts()])
def test_every_rule_is_tested_once_firing_and_once_quiet(alert: str) -> None:
    outcomes = {fires for name, fires in evaluations() if name == alert}
    assert outcomes == {True, False}, f"{alert}: no {'quiet' if True in outcomes else 'firing'} case"


def test_the_tests_name_no_alert_the_rules_lack() -> None:
    assert {name for name, _ in evaluations()} <= {rule["alert"] for rule in alerts()}


@pytest.fixture
def conn(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_database(database_url(redis_url, DB)) as client:
        yield client


def exported(conn: redis.Redis) -> set[str]:
    """Every series name the worker's endpoint can serve: the processes' metric objects and the scrape-time ones."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    build_metrics(registry)
    for collector in scrape_collectors(Settings(fair_share=True, politeness="on"), lambda: conn):
        registry.register(collector)
    families = list(registry.collect())
    # A labelled family with nothing to report yet (no certificate without TLS) still names its series.
    return {s.name for f in families for s in f.samples} | {f.name for f in families if f.type == "gauge"}


def test_every_metric_an_alert_reads_is_one_the_worker_exports(conn: redis.Redis) -> None:
    used = {name for rule in alerts() for name in METRIC.findall(rule["expr"])}
    assert used, "the rules read no toolrunner_ metric: the pattern is wrong"
    assert sorted(used - exported(conn)) == []
