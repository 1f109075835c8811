"""The mapping from how a container ended to the run's status (pure)."""

from __future__ import annotations

import pytest

from tasks.service import CacheInfo, RunResult, RunStats, Status, outcome


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
    "findings_truncated", "stats", "stderr_tail", "outputs", "missing_outputs", "artifacts", "timed_out",
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
