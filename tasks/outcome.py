"""Pure mapping from how a tool container ended to the run's status and a reason a person can read."""

from __future__ import annotations

from dataclasses import dataclass

OK = "ok"
TOOL_FAILED = "tool_failed"
TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class Outcome:
    """The run's status and, unless it is ok, why."""

    status: str
    reason: str | None = None


def outcome(exit_code: int | None, timed_out: bool, oom_killed: bool, timeout_seconds: float) -> Outcome:
    """Decide the status: a timeout wins, then the OOM killer, then the exit code."""
    if timed_out:
        return Outcome(TIMED_OUT, f"the tool ran past its {timeout_seconds:g}s timeout and was killed")
    if oom_killed:
        return Outcome(TOOL_FAILED, "the tool was killed by the kernel OOM killer: it hit its memory limit")
    if exit_code == 0:
        return Outcome(OK)
    if exit_code is None:
        return Outcome(TOOL_FAILED, "the tool's exit code is unknown")
    if exit_code > 128:
        return Outcome(TOOL_FAILED, f"the tool was killed by signal {exit_code - 128} (exit code {exit_code})")
    return Outcome(TOOL_FAILED, f"the tool exited with code {exit_code}")
