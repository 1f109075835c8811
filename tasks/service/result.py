"""What a run produces: its status and stage vocabularies, the outcome rule, and the typed result."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """How a run ended, as the result's `status` says it."""

    OK = "ok"
    TOOL_FAILED = "tool_failed"
    TIMED_OUT = "timed_out"


class Stage(StrEnum):
    """The lifecycle stage a run reports in its progress."""

    VALIDATING = "validating"
    WAITING_FOR_IDENTICAL_RUN = "waiting_for_identical_run"
    WAITING_FOR_SLOT = "waiting_for_slot"
    WAITING_FOR_HOST = "waiting_for_host"  # a host it scans is at its cap or budget (politeness); meta names it
    PULLING_IMAGE = "pulling_image"
    PREPARING_INPUTS = "preparing_inputs"
    RUNNING = "running"
    READING_OUTPUTS = "reading_outputs"
    CLEANING_UP = "cleaning_up"
    CHUNKS = "chunks"  # a chunked run's parent while its chunks run (tasks/worker/chunks.py); meta counts them


@dataclass(frozen=True)
class Outcome:
    """The run's status and, unless it is ok, why."""

    status: Status
    reason: str | None = None


def outcome(exit_code: int | None, timed_out: bool, oom_killed: bool, timeout_seconds: float) -> Outcome:
    """Decide the status: a timeout wins, then the OOM killer, then the exit code."""
    if timed_out:
        return Outcome(Status.TIMED_OUT, f"the tool ran past its {timeout_seconds:g}s timeout and was killed")
    if oom_killed:
        return Outcome(Status.TOOL_FAILED, "the tool was killed by the kernel OOM killer: it hit its memory limit")
    if exit_code == 0:
        return Outcome(Status.OK)
    if exit_code is None:
        return Outcome(Status.TOOL_FAILED, "the tool's exit code is unknown")
    if exit_code > 128:
        return Outcome(Status.TOOL_FAILED, f"the tool was killed by signal {exit_code - 128} (exit code {exit_code})")
    return Outcome(Status.TOOL_FAILED, f"the tool exited with code {exit_code}")


@dataclass(frozen=True, kw_only=True)
class RunStats:
    """Counts and durations of one run."""

    findings: int
    duration_ms: int
    tool_duration_ms: int
    bytes_in: int
    bytes_out: int
    stdout_lines: int


@dataclass(frozen=True, kw_only=True)
class CacheInfo:
    """Where a result came from, for a run that opted into the result cache: its own run, or a recent twin's."""

    hit: bool
    source_task_id: str | None = None
    age_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The result's `cache` field: {"hit": false}, or the hit with its source and age."""
        if not self.hit:
            return {"hit": False}
        return {"hit": True, "source_task_id": self.source_task_id, "age_seconds": self.age_seconds}


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """The result of one run; `as_dict()` is the task result's JSON, a contract with every caller."""

    tool: str
    tenant_id: str
    run_id: str
    task_id: str
    image: str
    exit_code: int | None
    status: Status
    reason: str | None
    findings: list[dict[str, Any]]
    findings_truncated: bool = False
    stats: RunStats
    stderr_tail: str
    outputs: dict[str, int] = field(default_factory=dict)
    missing_outputs: list[str] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    cache: CacheInfo | None = None  # only for a run that opted into the cache
    notices: list[str] = field(default_factory=list)  # what a setting capped in the request; [] when nothing was
    chunks: dict[str, Any] | None = None  # only for a chunked run's parent: its chunks' counts and failures

    @property
    def timed_out(self) -> bool:
        """Whether the tool was stopped at its timeout."""
        return self.status is Status.TIMED_OUT

    def as_dict(self) -> dict[str, Any]:
        """The JSON-safe dict stored as the task's result."""
        s = self.stats
        return {
            "tool": self.tool,
            "tenant_id": self.tenant_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "image": self.image,
            "exit_code": self.exit_code,
            "status": self.status.value,
            "reason": self.reason,
            "findings": self.findings,
            "findings_truncated": self.findings_truncated,
            "stats": {
                "findings": s.findings,
                "duration_ms": s.duration_ms,
                "tool_duration_ms": s.tool_duration_ms,
                "bytes_in": s.bytes_in,
                "bytes_out": s.bytes_out,
                "stdout_lines": s.stdout_lines,
            },
            "stderr_tail": self.stderr_tail,
            "outputs": dict(sorted(self.outputs.items())),
            "missing_outputs": self.missing_outputs,
            "artifacts": self.artifacts,
            "timed_out": self.timed_out,
            "notices": list(self.notices),
            **({"cache": self.cache.as_dict()} if self.cache is not None else {}),
            **({"chunks": self.chunks} if self.chunks is not None else {}),
        }

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> RunResult:
        """A result read back from where `as_dict()` stored it (the cache, the result backend).

        Fields a result stored by an older release lacks take their defaults; `timed_out` is derived again.
        """
        cache = stored.get("cache")
        return cls(
            tool=stored["tool"], tenant_id=stored["tenant_id"], run_id=stored["run_id"], task_id=stored["task_id"],
            image=stored["image"], exit_code=stored["exit_code"], status=Status(stored["status"]),
            reason=stored["reason"], findings=list(stored["findings"]),
            findings_truncated=bool(stored.get("findings_truncated", False)), stats=RunStats(**stored["stats"]),
            stderr_tail=stored["stderr_tail"], outputs=dict(stored.get("outputs", {})),
            missing_outputs=list(stored.get("missing_outputs", [])), artifacts=list(stored.get("artifacts", [])),
            cache=CacheInfo(**cache) if isinstance(cache, dict) else None, notices=list(stored.get("notices", [])),
            chunks=stored.get("chunks"),
        )  # fmt: skip
