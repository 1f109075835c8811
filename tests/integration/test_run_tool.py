"""run_tool through Redis and a real prefork worker, on the real Docker Engine, with a busybox test tool."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import pytest
import redis
from celery import Celery

from bench.launch import Worker, wait_until
from tasks import TOOL_TASKS, TaskIdentityError, app, result_for, run_tool

pytestmark = pytest.mark.integration
WAIT = 120


def script(text: str, outputs: list[str] | None = None, **params: Any) -> dict[str, Any]:
    return {"script": text, "outputs": outputs or ["out.txt"], **params}


def test_a_run_returns_parsed_findings_and_the_documented_result_fields(worker: Worker) -> None:
    params = script("cat /inputs/greeting.txt > /outputs/out.txt; echo second >> /outputs/out.txt")
    result = run_tool.delay("script", "acme", "run-1", params, {"greeting.txt": "hello\n"}).get(timeout=WAIT)
    assert result["status"] == "ok" and result["exit_code"] == 0 and result["reason"] is None
    assert result["findings"] == [{"file": "out.txt", "line": "hello"}, {"file": "out.txt", "line": "second"}]
    assert (result["tool"], result["tenant_id"], result["run_id"]) == ("script", "acme", "run-1")
    assert result["image"] == "toolrunner-busybox:local"
    assert result["outputs"] == {"out.txt": 13}
    assert result["stats"]["bytes_in"] == 6 and result["stats"]["bytes_out"] == 13
    assert result["stats"]["findings"] == 2 and result["stats"]["duration_ms"] > 0
    assert len(result["task_id"]) == 36


def test_a_tool_that_exits_nonzero_is_reported_as_tool_failed_with_its_stderr(worker: Worker) -> None:
    params = script("echo partial > /outputs/out.txt; echo 'bad flag' >&2; exit 3")
    result = run_tool.delay("script", "acme", "run-2", params).get(timeout=WAIT)
    assert result["status"] == "tool_failed" and result["exit_code"] == 3
    assert "exited with code 3" in result["reason"]
    assert "bad flag" in result["stderr_tail"]
    assert result["findings"] == [{"file": "out.txt", "line": "partial"}]


def test_a_tool_past_its_timeout_is_killed_and_reported_timed_out_with_partial_findings(
    worker: Worker, docker_client: docker.DockerClient
) -> None:
    params = script("echo early > /outputs/out.txt; sleep 300", timeout_seconds=2)
    started = time.monotonic()
    result = run_tool.delay("script", "acme", "run-3", params).get(timeout=WAIT)
    assert result["status"] == "timed_out" and result["timed_out"] is True
    assert result["findings"] == [{"file": "out.txt", "line": "early"}]
    assert time.monotonic() - started < 60, "the container was not stopped at its timeout"
    running = docker_client.api.containers(filters={"label": ["studio.run=run-3"]})
    assert running == []


def test_a_missing_output_file_is_listed_not_fatal(worker: Worker) -> None:
    result = run_tool.delay("script", "acme", "run-4", script("true", ["a.txt", "b.txt"])).get(timeout=WAIT)
    assert result["status"] == "ok" and result["findings"] == []
    assert result["missing_outputs"] == ["a.txt", "b.txt"]


def test_progress_is_visible_from_outside_while_the_tool_runs(worker: Worker) -> None:
    params = script("for i in 1 2 3 4 5 6; do echo line$i; sleep 0.5; done; echo done > /outputs/out.txt")
    handle = run_tool.delay("script", "acme", "run-5", params)
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + WAIT
    while not handle.ready() and time.monotonic() < deadline:
        info = app.AsyncResult(handle.id).info
        if handle.state == "PROGRESS" and isinstance(info, dict):
            seen.append(info)
        time.sleep(0.1)
    assert handle.get(timeout=WAIT)["status"] == "ok"
    stages = [s["stage"] for s in seen]
    assert "running" in stages
    running = [s for s in seen if s["stage"] == "running"]
    assert any(s["elapsed_seconds"] > 0 for s in running)
    assert max(s["output_lines"] for s in running) >= 1
    assert all(s["tenant_id"] == "acme" and s["run_id"] == "run-5" for s in seen)


def test_the_per_tool_task_does_the_same_as_run_tool(worker: Worker) -> None:
    result = TOOL_TASKS["nmap"].delay("acme", "run-6", {"targets": ["bad target;"], "ports": "80"})
    with pytest.raises(Exception, match="invalid params for nmap"):
        result.get(timeout=WAIT)


def test_eight_concurrent_runs_of_two_tenants_each_get_only_their_own_files(worker: Worker) -> None:
    def one(i: int) -> tuple[str, dict[str, Any]]:
        tenant = ("tenant-a", "tenant-b")[i % 2]
        marker = f"{tenant}-secret-{i}"
        params = script("sleep 1; cat /inputs/secret.txt > /outputs/out.txt; ls /inputs >> /outputs/out.txt")
        handle = run_tool.delay("script", tenant, f"par-{i}", params, {"secret.txt": marker + "\n"})
        return marker, handle.get(timeout=WAIT)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    for marker, result in results:
        assert result["status"] == "ok"
        assert [f["line"] for f in result["findings"]] == [marker, "secret.txt"]
        assert result["tenant_id"] == marker.split("-secret-")[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("no-such-tool", "acme", "r", {}), "unknown tool 'no-such-tool'; known tools: .*nmap"),
        (("script", "acme corp", "r", {"script": "true"}), "tenant_id 'acme corp' is invalid"),
        (("script", "acme", "r/1", {"script": "true"}), "run_id 'r/1' is invalid"),
        (("script", "acme", "r", {"script": "true", "extra": 1}), "invalid params for script"),
    ],
)
def test_bad_input_fails_the_task_at_once_with_a_clear_error(
    worker: Worker, args: tuple[Any, ...], message: str
) -> None:
    handle = run_tool.delay(*args)
    with pytest.raises(Exception, match=message):
        handle.get(timeout=WAIT)
    assert handle.state == "FAILURE"


def test_celerys_soft_time_limit_kills_the_container_and_reports_timed_out(
    worker: Worker, docker_client: docker.DockerClient
) -> None:
    params = script("echo before > /outputs/out.txt; sleep 300", timeout_seconds=200)
    handle = run_tool.apply_async(("script", "acme", "soft-1", params), soft_time_limit=3, time_limit=60)
    result = handle.get(timeout=WAIT)
    assert result["status"] == "timed_out"
    assert result["findings"] == [{"file": "out.txt", "line": "before"}]
    assert docker_client.api.containers(all=True, filters={"label": ["studio.run=soft-1"]}) == []


def test_an_absent_image_fails_the_run_naming_the_image_and_its_override(worker: Worker) -> None:
    handle = run_tool.delay("absent", "acme", "img-1", {})
    with pytest.raises(Exception, match=r"toolrunner-absent-image:0\.0\.0.*TOOLRUNNER_IMAGE_ABSENT"):
        handle.get(timeout=WAIT)


def test_a_task_id_reused_for_another_tenant_is_refused_at_publish_and_queues_nothing(worker: Worker) -> None:
    task_id = "caller-chosen-idempotency-key"
    secret = script("echo secret > /outputs/out.txt; sleep 2")
    first = run_tool.apply_async(("script", "acme", "shared-id", secret), task_id=task_id)
    # The same id for another tenant's run, through every way the app publishes a run: refused before
    # anything is queued, so no message of globex's ever reaches a worker and no handle of it exists.
    leak = script("echo leak > /outputs/out.txt")
    publishes = [
        lambda: run_tool.apply_async(("script", "globex", "shared-id", leak), task_id=task_id),
        lambda: app.send_task("toolrunner.run_tool", ("script", "globex", "shared-id", leak), task_id=task_id),
        lambda: TOOL_TASKS["nmap"].apply_async(("globex", "shared-id", {"targets": ["127.0.0.1"]}), task_id=task_id),
        lambda: run_tool.apply_async(("script", "acme", "another-run", leak), task_id=task_id),
    ]
    for publish in publishes:
        with pytest.raises(TaskIdentityError, match="already stands for another run"):
            publish()
    again = run_tool.apply_async(("script", "acme", "shared-id", secret), task_id=task_id)  # idempotent
    assert (
        first.get(timeout=WAIT)["findings"]
        == again.get(timeout=WAIT)["findings"]
        == [{"file": "out.txt", "line": "secret"}]
    )
    assert f"refused task={task_id}" not in worker.log_text(), "nothing of globex's was queued"


def test_a_producer_that_bypasses_the_app_is_refused_by_the_worker_and_its_reader_by_result_for(
    worker: Worker,
) -> None:
    """A plain Celery app (no publish-time claim) reaches the worker, which refuses the reused id."""
    task_id = "bypassing-idempotency-key"
    first = run_tool.apply_async(("script", "acme", "bypass", script("echo secret > /outputs/out.txt; sleep 4")),
                                 task_id=task_id)  # fmt: skip
    while first.state != "PROGRESS":
        time.sleep(0.1)
    plain = Celery("plain-producer", set_as_current=False)
    plain.conf.update(broker_url=app.conf.broker_url, result_backend=app.conf.result_backend)
    try:
        plain.send_task("toolrunner.run_tool", ("script", "globex", "bypass", script("echo leak > /outputs/out.txt")),
                        task_id=task_id)  # fmt: skip
        assert first.get(timeout=WAIT)["findings"] == [{"file": "out.txt", "line": "secret"}]
        wait_until(lambda: f"refused task={task_id}: task id {task_id} already stands" in worker.log_text(), 30,
                   "the worker's refusal")  # fmt: skip
    finally:
        plain.close()
    # The id names acme's run: a reader asking for globex's run under it gets the refusal, never acme's
    # findings; acme's reader gets acme's.
    with pytest.raises(TaskIdentityError, match="tenant_id differ"):
        result_for(task_id, "script", "globex", "bypass", timeout=WAIT)
    assert result_for(task_id, "script", "acme", "bypass", timeout=WAIT)["tenant_id"] == "acme"


def test_progress_and_results_in_the_backend_never_carry_the_input_files(worker: Worker) -> None:
    files = {"big.txt": "x" * (2 << 20)}  # 2 MiB of input
    handle = run_tool.delay("script", "acme", "small-meta", script("sleep 3; echo done > /outputs/out.txt"), files)
    key = f"celery-task-meta-{handle.id}"
    largest = 0
    with redis.Redis.from_url(app.conf.result_backend) as conn:
        while not handle.ready():
            largest = max(largest, int(conn.strlen(key)))
            time.sleep(0.1)
        assert handle.get(timeout=WAIT)["status"] == "ok"
        largest = max(largest, int(conn.strlen(key)))
    assert 0 < largest < 16 << 10, f"a stored state of {largest} bytes: the input files reached the backend"
