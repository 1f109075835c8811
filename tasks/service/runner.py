"""Running a validated plan: volumes in and out, the tool container, outputs parsed into findings."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import docker

import isolation
from config import Settings
from tasks.service.plan import RunPlan
from tasks.service.result import Outcome, RunResult, RunStats, Stage, Status, outcome
from tasks.tools.base import INPUTS, OUTPUTS

logger = logging.getLogger(__name__)

Reporter = Callable[[Stage, Mapping[str, Any]], None]
Volume = isolation.IsolatedContainerVolume


class RunMetrics(Protocol):
    """What a run records about itself; the worker backs it with Prometheus."""

    def stage_took(self, stage: Stage, seconds: float) -> None:
        """A lifecycle stage ended after this many seconds."""

    def volume_done(self, removed: bool) -> None:
        """A volume the run created was removed (or failed to be)."""

    def run_done(self, tool: str, status: Status, tool_seconds: float, bytes_in: int, bytes_out: int) -> None:
        """A run ended with this status."""


@dataclass(frozen=True)
class RunContext:
    """Where and how a plan runs: the engine, the settings, the task id, a progress reporter, metrics.

    `interruptions` are the exceptions by which the caller interrupts a run (Celery's soft time limit):
    raised while the tool runs, the run stops there and is reported as timed out with what it wrote.
    """

    client: docker.DockerClient
    settings: Settings
    task_id: str
    report: Reporter
    worker: str = "local"
    metrics: RunMetrics | None = None
    interruptions: tuple[type[BaseException], ...] = field(default=())

    @contextmanager
    def stage(self, name: Stage, **meta: Any) -> Iterator[None]:
        """Report that a lifecycle stage starts and record how long it took."""
        self.report(name, meta)
        with self.timed(name):
            yield

    @contextmanager
    def timed(self, name: Stage) -> Iterator[None]:
        """Record how long a lifecycle stage took."""
        started = time.monotonic()
        try:
            yield
        finally:
            if self.metrics:
                self.metrics.stage_took(name, time.monotonic() - started)


@dataclass(frozen=True)
class ToolRun:
    """How the tool container ended, and whether the caller interrupted it."""

    container: isolation.ContainerResult
    interrupted: bool = False


@dataclass(frozen=True)
class OutputFiles:
    """The outputs read back: their bytes, the names the tool did not write, why they were refused."""

    files: dict[str, bytes] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    refused: str | None = None

    @property
    def size(self) -> int:
        """Total bytes read."""
        return sum(len(v) for v in self.files.values())


def execute(plan: RunPlan, ctx: RunContext) -> RunResult:
    """Run plan end to end and return its result; volumes and containers are always removed."""
    started = time.monotonic()
    labels = {"task": ctx.task_id, "tool": plan.spec.name, "worker": ctx.worker}
    new_volume = partial(Volume, plan.tenant_id, plan.run_id, ctx.client, **_volume_options(ctx, labels))
    inputs, outputs = new_volume(), new_volume()
    try:
        with ctx.stage(Stage.PREPARING_INPUTS, files=len(plan.inputs)):
            inputs.initialize(plan.inputs)
            outputs.initialize({})
        run = _run_tool(plan, ctx, inputs, outputs)
        with ctx.stage(Stage.READING_OUTPUTS, files=len(plan.invocation.output_files)):
            read = _read_outputs(outputs, plan.invocation.output_files)
    finally:
        # Cleanup runs even if reporting the stage raises (e.g. Celery's soft time limit fires right then).
        try:
            ctx.report(Stage.CLEANING_UP, {})
        finally:
            with ctx.timed(Stage.CLEANING_UP):
                _cleanup(ctx, inputs, outputs)
    findings = plan.spec.parse(read.files)
    result = _outcome(plan, run, read)
    if ctx.metrics:
        ctx.metrics.run_done(
            plan.spec.name, result.status, run.container.duration_ms / 1000, plan.input_bytes, read.size
        )
    return _result(plan, ctx, run, result, findings, read, started)


def _volume_options(ctx: RunContext, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "label_prefix": ctx.settings.label_prefix,
        "extra_labels": labels,
        "max_file_bytes": ctx.settings.max_output_file_bytes,
        "max_total_bytes": ctx.settings.max_output_total_bytes,
    }


def _run_tool(plan: RunPlan, ctx: RunContext, inputs: Volume, outputs: Volume) -> ToolRun:
    spec = _container_spec(plan, ctx.settings, inputs, outputs)

    def tick(elapsed: float, lines: int) -> None:
        ctx.report(Stage.RUNNING, {"elapsed_seconds": round(elapsed, 1), "output_lines": lines})

    started = time.monotonic()
    with ctx.stage(Stage.RUNNING, elapsed_seconds=0.0, output_lines=0):
        try:
            return ToolRun(
                isolation.run_container(
                    ctx.client, spec, plan.timeout_seconds, on_tick=tick, tail_bytes=ctx.settings.stdout_tail_bytes
                )
            )
        except ctx.interruptions:
            # The caller interrupted the run mid-tool: run_container already killed and removed the
            # container; keep what the tool wrote so far and report the run as timed out.
            logger.warning("run interrupted while the tool ran task=%s volume=%s", ctx.task_id, outputs.name)
            elapsed = int((time.monotonic() - started) * 1000)
            killed = isolation.ContainerResult(
                exit_code=None, timed_out=True, oom_killed=False, duration_ms=elapsed,
                stdout_tail="", stderr_tail="", stdout_lines=0,
            )  # fmt: skip
            return ToolRun(killed, interrupted=True)


def _container_spec(plan: RunPlan, settings: Settings, inputs: Volume, outputs: Volume) -> isolation.ContainerSpec:
    return isolation.ContainerSpec(
        image=settings.image_for(plan.spec.name, plan.spec.image),
        entrypoint=plan.spec.entrypoint,
        argv=plan.invocation.argv,
        mounts=[inputs.get_volume_config(INPUTS, True), outputs.get_volume_config(OUTPUTS, False)],
        labels={**outputs.labels, f"{settings.label_prefix}.role": "tool"},
        network=plan.spec.network or settings.tool_network,
        user=plan.spec.user,
        cap_add=plan.spec.cap_add,
        limits=settings.container_limits(),
        image_hint=f"point TOOLRUNNER_IMAGE_{plan.spec.name.upper()} at an image that has it",
    )


def _read_outputs(volume: Volume, names: list[str]) -> OutputFiles:
    """Read the outputs back in one archive download.

    A tool that wrote nothing is not an error here; one whose outputs are links or over the caps gets
    no findings and a tool_failed status saying why, rather than a task failure without a result.
    """
    missing: list[str] = []
    try:
        try:
            return OutputFiles(volume.read_files(names))
        except isolation.MissingOutputError as exc:
            missing = exc.missing
            present = [n for n in names if n not in exc.missing]
            return OutputFiles(volume.read_files(present) if present else {}, missing)
    except (isolation.OutputTooLargeError, isolation.UnsafeOutputError) as exc:
        logger.warning("outputs refused volume=%s: %s", volume.name, exc)
        return OutputFiles({}, missing, str(exc))


def _cleanup(ctx: RunContext, *volumes: Volume) -> None:
    """Clean up every volume; an exception while cleaning one (a soft time limit) still lets the next run."""
    with ExitStack() as stack:
        for volume in volumes:
            stack.callback(_cleanup_one, ctx, volume)


def _cleanup_one(ctx: RunContext, volume: Volume) -> None:
    existed = volume.exists
    gone = volume.cleanup()
    if ctx.metrics and existed:
        ctx.metrics.volume_done(gone)


def _outcome(plan: RunPlan, run: ToolRun, read: OutputFiles) -> Outcome:
    if read.refused:
        return Outcome(Status.TOOL_FAILED, f"its outputs were refused: {read.refused}")
    c = run.container
    return outcome(c.exit_code, c.timed_out or run.interrupted, c.oom_killed, plan.timeout_seconds)


def _result(
    plan: RunPlan,
    ctx: RunContext,
    run: ToolRun,
    result: Outcome,
    findings: list[dict[str, Any]],
    read: OutputFiles,
    started: float,
) -> RunResult:
    c = run.container
    return RunResult(
        tool=plan.spec.name,
        tenant_id=plan.tenant_id,
        run_id=plan.run_id,
        task_id=ctx.task_id,
        image=ctx.settings.image_for(plan.spec.name, plan.spec.image),
        exit_code=c.exit_code,
        status=result.status,
        reason=result.reason,
        findings=findings,
        stats=RunStats(
            findings=len(findings),
            duration_ms=int((time.monotonic() - started) * 1000),
            tool_duration_ms=c.duration_ms,
            bytes_in=plan.input_bytes,
            bytes_out=read.size,
            stdout_lines=c.stdout_lines,
        ),
        stderr_tail=c.stderr_tail,
        outputs={name: len(data) for name, data in read.files.items()},
        missing_outputs=read.missing,
    )
