"""A short soak through bench.soak: a real worker SIGKILLed mid-run loses no run, runs none twice, leaks nothing."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest
import redis
from rich.console import Console

from bench.soak.check import duplicate_completions, duplicate_log_successes, lost, mismatches, read_classes
from bench.soak.plan import Observed, Plan, SoakConfig
from bench.soak.run import run_soak
from bench.soak.table import report
from tests.conftest import REDIS_URL

# The first test also pays for the shared soak: each must be done within two minutes.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
SOAK_DB = REDIS_URL.rsplit("/", 1)[0] + "/11"  # the suite's Redis server, a database of the soak's own
# Host engine, no daemon restart: one SIGKILL of the worker (its runs come back after the 16 s visibility timeout).
SHORT = SoakConfig(
    runs=24, tenants=3, concurrency=4, seed=7, kill_rate=0.04, daemon_restart=False, dind=False, redis_url=SOAK_DB
)


@pytest.fixture(scope="module")
def soak(
    redis_url: str, busybox_image: str, docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Plan, Observed]]:
    """One short soak shared by the tests below; its workers use label prefix soak and Redis database 11 only."""
    with redis.Redis.from_url(SOAK_DB, socket_connect_timeout=2) as conn:
        conn.ping()
    plan, observed = run_soak(SHORT, tmp_path_factory.mktemp("soak"), Console(width=150))
    report(SHORT, plan, observed, Console(width=150))  # shown by pytest when a test below fails
    yield plan, observed


def test_a_short_soak_with_a_sigkilled_worker_loses_no_run(soak: tuple[Plan, Observed]) -> None:
    plan, observed = soak
    kills = [d for d in observed.disruptions if d.kind == "kill"]
    assert len(kills) == 1 and kills[0].in_flight, "the worker should be killed once with runs in flight"
    assert [run.run_id for run in lost(plan, observed)] == []


def test_no_run_of_the_short_soak_completes_twice(soak: tuple[Plan, Observed]) -> None:
    plan, observed = soak
    # The detector must have seen every result published, or "no duplicates" would mean nothing.
    assert set(observed.published) == {run.task_id for run in plan.runs}
    assert duplicate_completions(observed) == {}
    assert duplicate_log_successes(observed.logs) == {}


def test_every_result_of_the_short_soak_carries_its_own_tenant_and_run_marker(soak: tuple[Plan, Observed]) -> None:
    plan, observed = soak
    assert read_classes(plan, observed) == {"own": len(plan.runs)}


def test_every_run_of_the_short_soak_ends_with_the_status_of_its_injected_failure(
    soak: tuple[Plan, Observed],
) -> None:
    plan, observed = soak
    assert {run.failure for run in plan.runs} == {"none", "exit", "timeout"}
    assert [(run.run_id, run.expected, status) for run, status in mismatches(plan, observed)] == []


def test_nothing_labelled_soak_is_left_after_the_short_soak_sweep(
    soak: tuple[Plan, Observed], docker_client: docker.DockerClient
) -> None:
    _, observed = soak
    assert "error" not in observed.sweep, observed.sweep
    assert observed.left_after_sweep == (0, 0)
    assert docker_client.api.volumes(filters={"label": ["soak.managed=true"]}).get("Volumes") in (None, [])
    assert docker_client.api.containers(all=True, filters={"label": ["soak.managed=true"]}) == []
