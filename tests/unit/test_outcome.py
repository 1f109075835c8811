"""The mapping from how a container ended to the run's status, and the result's JSON shape (pure)."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from tasks import app
from tasks.service import CacheInfo, RunRequest, RunResult, RunStats, Status, outcome, plan_run
from tasks.worker.cache import Found, Lookup, _hit


@pytest.mark.parametrize(
    ("exit_code", "timed_out", "oom", "status", "reason"),
    [
        (0, False, False, Status.OK, None),
        (1, False, False, Status.TOOL_FAILED, "exited with code 1"),
        (137, False, False, Status.TOOL_FAILED, "killed by signal 9"),
        (137, False, True, Status.TOOL_FAILED, "OOM killer"),
        (137, True, False, Status.TIMED_OUT, "past its 5s timeout"),
        (0, True, True, Status.TIMED_OUT, "past its 5s timeout"),
        (None, False, False, Status.TOOL_FAILED, "unknown"),
    ],
)
def test_the_status_follows_timeout_then_oom_then_exit_code(
    exit_code: int | None, timed_out: bool, oom: bool, status: str, reason: str | None
) -> None:
    result = outcome(exit_code, timed_out, oom, 5)
    assert result.status == status
    if reason is None:
        assert result.reason is None
    else:
        assert result.reason is not None and reason in result.reason


RESULT_KEYS = [
    "tool", "tenant_id", "run_id", "task_id", "image", "exit_code", "status", "reason", "findings",
    "findings_truncated", "stats", "stderr_tail", "outputs", "missing_outputs", "artifacts", "timed_out", "notices",
]  # fmt: skip


def _result(**overrides: object) -> RunResult:
    stats = RunStats(findings=1, duration_ms=20, tool_duration_ms=10, bytes_in=3, bytes_out=4, stdout_lines=1)
    fields: dict[str, object] = {
        "tool": "nmap", "tenant_id": "acme", "run_id": "r1", "task_id": "t1", "image": "img", "exit_code": 0,
        "status": Status.OK, "reason": None, "findings": [{"port": 80}], "stats": stats, "stderr_tail": "",
        "outputs": {"out.xml": 4}, "artifacts": [{"name": "out.xml", "uri": "file:///x"}],
    }  # fmt: skip
    return RunResult(**{**fields, **overrides})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "cache", [None, CacheInfo(hit=False), CacheInfo(hit=True, source_task_id="t0", age_seconds=1.5)]
)
def test_the_result_keeps_its_documented_json_shape_and_reads_back_unchanged(cache: CacheInfo | None) -> None:
    """Issue 23: the typed result travels to the Celery boundary; its dict is the contract (docs: the result)."""
    stored = _result(cache=cache).as_dict()
    assert list(stored) == RESULT_KEYS + ([] if cache is None else ["cache"])
    assert RunResult.from_dict(stored).as_dict() == stored
    assert stored["status"] == "ok" and stored["timed_out"] is False


def test_a_result_stored_before_the_artifact_fields_existed_reads_back_with_their_defaults() -> None:
    stored = {k: v for k, v in _result().as_dict().items() if k not in ("artifacts", "missing_outputs", "outputs")}
    again = RunResult.from_dict(stored)
    assert (again.artifacts, again.missing_outputs, again.outputs) == ([], [], {})


def test_notices_are_on_every_result_and_an_empty_list_when_nothing_was_capped() -> None:
    assert _result().as_dict()["notices"] == []
    said = ["timeout_seconds=99999 was capped to 3600 by TOOLRUNNER_MAX_TIMEOUT_SECONDS"]
    assert _result(notices=said).as_dict()["notices"] == said
    older = {k: v for k, v in _result(notices=said).as_dict().items() if k != "notices"}
    assert RunResult.from_dict(older).as_dict()["notices"] == [], "a result stored before notices existed"


def test_a_cache_hit_carries_the_notices_of_its_own_request_not_those_of_the_run_it_reuses() -> None:
    request = plan_run(
        app.catalogue, RunRequest("script", "acme", "r2", {"script": "true", "cache_max_age_seconds": 999999}),
        max_input_bytes=1000, max_timeout_seconds=100, max_cache_age_seconds=60,
    )  # fmt: skip
    stored = _result(notices=["timeout_seconds=5000 was capped to 100 by TOOLRUNNER_MAX_TIMEOUT_SECONDS"])
    answer = Lookup(Found.HIT, json.dumps(stored.as_dict()), int(time.time() * 1000), "t1")
    hit = _hit(SimpleNamespace(request=SimpleNamespace(id="t2")), request, answer)  # type: ignore[arg-type]
    assert hit.notices == ["cache_max_age_seconds=999999 was capped to 60 by TOOLRUNNER_CACHE_MAX_AGE_SECONDS"]
    assert (hit.task_id, hit.run_id) == ("t2", "r2") and hit.cache is not None and hit.cache.source_task_id == "t1"
