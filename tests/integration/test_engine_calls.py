"""How many engine API calls one run makes, counted on the wire by a proxy in front of the engine (bench.engineproxy).

The count is the proxy's, not the code's: every HTTP request that reaches the engine's socket from the run's client
(a service-level run given a client of the proxy, and a real worker whose DOCKER_HOST is the proxy).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import docker
import pytest

from bench.engineproxy import EngineProxy, ProxyLog
from bench.launch import start_worker
from isolation import SeenImages
from isolation.streamed import INLINE_INPUT_BYTES
from tasks import app, run_tool
from tasks.service import RunContext, RunRequest, RunResult, execute, plan_run

pytestmark = pytest.mark.integration
# Calls one run with an input file makes once its worker is warm (a client made, the tool image seen before): its
# files travel in its own container (isolation.streamed). Inputs too big for that take the archive path.
BUDGET = 5
ARCHIVE_BUDGET = 10
QUEUE = "engine-calls"
WAIT = 120
PARAMS = {"script": "cat /inputs/in.txt > /outputs/out.txt; echo to-stderr >&2", "outputs": ["out.txt"]}
INPUTS = {"in.txt": "hello\n"}


@pytest.fixture
def proxy() -> Iterator[EngineProxy]:
    with EngineProxy() as running:
        yield running


def service_run(
    client: docker.DockerClient, run_id: str, images: SeenImages, inputs: dict[str, str] = INPUTS
) -> RunResult:
    request = RunRequest("script", "acme", run_id, PARAMS, inputs)
    limits = {"max_input_bytes": app.settings.max_input_bytes, "max_timeout_seconds": app.settings.max_timeout_seconds}
    plan = plan_run(app.catalogue, request, **limits)
    return execute(plan, RunContext(client, app.settings, f"task-{run_id}", lambda *_: None, images=images))


def within_budget(log: ProxyLog, what: str, budget: int = BUDGET) -> list[str]:
    calls = log.take()
    listing = f"{what}: {len(calls)} engine calls (budget {budget})\n" + "\n".join(calls)
    print("\n" + listing)
    assert len(calls) <= budget, listing
    return calls


def test_a_run_through_the_service_makes_no_more_engine_calls_than_the_budget(
    proxy: EngineProxy, busybox_image: str
) -> None:
    images = SeenImages()  # as a worker keeps one
    with closing(docker.DockerClient(base_url=proxy.base_url, timeout=60)) as client:
        assert service_run(client, "calls-warm", images).status == "ok"  # the version check, the image first seen
        proxy.log.take()
        result = service_run(client, "calls-1", images)
    assert result.status == "ok" and result.findings == [{"file": "out.txt", "line": "hello"}]
    assert "to-stderr" in result.stderr_tail
    calls = within_budget(proxy.log, "service run")
    assert not any("/archive" in call for call in calls), "a run whose inputs fit its create made an archive call"


def test_inputs_too_big_to_ride_in_the_create_take_the_archive_path_within_its_budget(
    proxy: EngineProxy, busybox_image: str
) -> None:
    big = {"in.txt": "hello\n" + "x" * INLINE_INPUT_BYTES}
    images = SeenImages()
    with closing(docker.DockerClient(base_url=proxy.base_url, timeout=60)) as client:
        assert service_run(client, "calls-big-warm", images, big).status == "ok"
        proxy.log.take()
        result = service_run(client, "calls-big", images, big)
    assert result.status == "ok" and result.findings[0] == {"file": "out.txt", "line": "hello"}
    assert result.stats.bytes_in == len(big["in.txt"])
    calls = within_budget(proxy.log, "archive-path run", ARCHIVE_BUDGET)
    assert sum("/archive" in call for call in calls) == 2, "one put_archive, one get_archive"


def test_a_run_through_a_real_worker_makes_no_more_engine_calls_than_the_budget(
    proxy: EngineProxy, redis_url: str, busybox_image: str, tmp_path: Path
) -> None:
    env = {"DOCKER_HOST": proxy.base_url, "TOOLRUNNER_REAPER_INTERVAL_SECONDS": "3600"}
    worker = start_worker(tmp_path, "engine-calls", env=env, queues=QUEUE, concurrency=1)
    try:
        warm = run_tool.apply_async(("script", "acme", "calls-warm", PARAMS, INPUTS), queue=QUEUE).get(timeout=WAIT)
        assert warm["status"] == "ok", warm
        proxy.log.take()  # the worker's start (its reaper's first pass) and the warm-up run
        result = run_tool.apply_async(("script", "acme", "calls-2", PARAMS, INPUTS), queue=QUEUE).get(timeout=WAIT)
        calls = within_budget(proxy.log, "worker run")
    finally:
        worker.stop()
    assert result["status"] == "ok" and result["findings"] == [{"file": "out.txt", "line": "hello"}]
    assert calls, "the worker did not go through the proxy"
