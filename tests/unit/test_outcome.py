"""The mapping from how a container ended to the run's status (pure)."""

from __future__ import annotations

import pytest

from tasks.service import Status, outcome


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
