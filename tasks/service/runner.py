"""Running a validated plan: volumes in and out, the tool container, outputs parsed into findings."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import docker

import isolation
from config import Settings
from isolation import Label
from tasks.artifacts import ArtifactRecord, Artifacts
from tasks.service.findings import Findings, marked
from tasks.service.outputs import OutputFiles, SpoolSink, parse_outputs, read_outputs
from tasks.service.plan import RunPlan
from tasks.service.result import Outcome, RunResult, RunStats, Stage, Status, outcome
from tasks.tools.base import INPUTS, OUTPUTS

logger = logging.getLogger(__name__)

Reporter = Callable[[Stage, Mapping[str, Any]], None]
Workspace = isolation.RunWorkspace
# A tool container is killed at its timeout by its run; past the timeout plus this, it is an orphan the
# reaper may kill (its worker is gone).
CONTAINER_DEADLINE_GRACE = timedelta(seconds=30)


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
    artifacts: Artifacts | None = None
    interruptions: tuple[type[BaseException], ...] = field(default=())
    # Whether a host a finding names is outside the tenant's scope (None: scope is off, nothing is marked).
    outside: Callable[[str], bool] | None = None
    # The images this worker has seen on its engine (None: every run asks the engine).
    images: isolation.SeenImages | None = None
    # The findings the result carries, in bytes (None: TOOLRUNNER_INLINE_FINDINGS_BYTES); past it, findings.jsonl.
    inline_bytes: int | None = None

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
class _Ended:
    """What a run left once its volumes are gone: how the tool ended, the outputs read, the findings parsed from
    them, the verdict on all three, and the artifacts stored."""

    run: ToolRun
    read: OutputFiles
    found: Findings
    outcome: Outcome
    artifacts: list[ArtifactRecord]


def execute(plan: RunPlan, ctx: RunContext) -> RunResult:
    """Run plan end to end and return its result; volumes and containers are always removed.

    Outputs stream from the engine into a local spool directory (and the artifact store), never whole
    into memory, and the parser reads them from there as streams after the volumes are gone.
    """
    started = time.monotonic()
    image = ctx.settings.image_for(plan.spec.name, plan.spec.image)
    stored = ctx.artifacts.for_task(plan.tenant_id, plan.run_id, ctx.task_id) if ctx.artifacts else None
    with tempfile.TemporaryDirectory(prefix="toolrunner-outputs-") as spool:
        run, read = _run_with_image(plan, ctx, image, SpoolSink(spool, stored))
        parse = marked(plan.spec.parse, plan.spec.finding_hosts, ctx.outside)
        inline = ctx.settings.inline_findings_bytes if ctx.inline_bytes is None else ctx.inline_bytes
        found = parse_outputs(parse, read, stored, inline, interruptions=ctx.interruptions)
    ended = _Ended(run, read, found, _outcome(plan, run, read, found), stored.records if stored else [])
    if ctx.metrics:
        ctx.metrics.run_done(
            plan.spec.name, ended.outcome.status, run.container.duration_ms / 1000, plan.input_bytes, read.size
        )
    return _result(plan, ctx, image, ended, started)


def _run_with_image(plan: RunPlan, ctx: RunContext, image: str, sink: SpoolSink) -> tuple[ToolRun, OutputFiles]:
    """Pull the image when missing, then run; an image this worker remembered but the engine lost since is pulled
    and the run made again (the tool never started: the create that found it missing is the first tool call)."""
    _pull_if_missing(plan, ctx, image)
    try:
        return _run_in_volumes(plan, ctx, image, sink)
    except isolation.ImageMissingError:
        if ctx.images is None or not ctx.images.forget(image):
            raise
        logger.warning(
            "image %s left the engine since this worker saw it: pulling it again task=%s", image, ctx.task_id
        )
    _pull_if_missing(plan, ctx, image)
    return _run_in_volumes(plan, ctx, image, sink)


def _run_in_volumes(plan: RunPlan, ctx: RunContext, image: str, sink: SpoolSink) -> tuple[ToolRun, OutputFiles]:
    """Inputs in, the tool, outputs out into sink; the workspace (both volumes) is removed whatever happens.

    An image that can carry a run's files in its own container (isolation.streams) gets inputs that fit in its
    create call that way, and its outputs on its stdout: no helper container, no archive call (isolation.streamed).
    """
    labels: dict[str, str] = {Label.TASK: ctx.task_id, Label.TOOL: plan.spec.name, Label.WORKER: ctx.worker}
    options = {"deadline": _volume_deadline(plan, ctx.settings), **_volume_options(ctx, labels)}
    inline = (
        isolation.inline_inputs(plan.inputs) if ctx.images and isolation.streams(ctx.images.labels_of(image)) else None
    )
    if inline is not None:
        streamed = isolation.StreamedWorkspace(plan.tenant_id, plan.run_id, ctx.client, **options)
        return _run_streamed(plan, ctx, image, sink, streamed, inline)
    workspace = Workspace(plan.tenant_id, plan.run_id, ctx.client, **options)
    tool_removed = False
    try:
        with ctx.stage(Stage.PREPARING_INPUTS, files=len(plan.inputs)):
            workspace.open(plan.inputs)
        run = _run_tool(plan, ctx, workspace, image)
        tool_removed = run.container.removed
        with ctx.stage(Stage.READING_OUTPUTS, files=len(plan.invocation.output_files)):
            return run, read_outputs(workspace, plan.invocation.output_files, sink)
    finally:
        _cleanup_stage(ctx, workspace, verify=not tool_removed)


def _run_streamed(
    plan: RunPlan, ctx: RunContext, image: str, sink: SpoolSink, workspace: isolation.StreamedWorkspace, inline: str
) -> tuple[ToolRun, OutputFiles]:
    """The same stages through one container: its create makes both volumes and carries the inputs, and its
    stdout carries the outputs into sink as it ends; read_outputs then takes what arrived (or reads the volume)."""
    try:
        with ctx.stage(Stage.PREPARING_INPUTS, files=len(plan.inputs), via="create"):
            workspace.open(inline, outputs=plan.invocation.output_files, sink=sink)
        run = _run_tool(plan, ctx, workspace, image)
        via = "stdout" if workspace.outputs_streamed else "volume"
        with ctx.stage(Stage.READING_OUTPUTS, files=len(plan.invocation.output_files), via=via):
            return run, read_outputs(workspace, plan.invocation.output_files, sink)
    finally:
        _cleanup_stage(ctx, workspace, verify=False)  # the workspace removes its own tool container, volumes with it


def _cleanup_stage(ctx: RunContext, workspace: Workspace, *, verify: bool) -> None:
    # Cleanup runs even if reporting the stage raises (e.g. Celery's soft time limit fires right then).
    try:
        ctx.report(Stage.CLEANING_UP, {})
    finally:
        with ctx.timed(Stage.CLEANING_UP):
            _cleanup(ctx, workspace, verify=verify)


def _pull_if_missing(plan: RunPlan, ctx: RunContext, image: str) -> None:
    """Pull a missing image in a stage of its own, with its own timeout: a pull is never tool time."""
    if ctx.images.present(ctx.client, image) if ctx.images else isolation.image_present(ctx.client, image):
        return
    with ctx.stage(Stage.PULLING_IMAGE, image=image):
        isolation.pull_image(
            ctx.client, image, timeout_seconds=ctx.settings.pull_timeout_seconds, hint=_image_hint(plan)
        )


def _image_hint(plan: RunPlan) -> str:
    return f"point TOOLRUNNER_IMAGE_{plan.spec.name.upper()} at an image that has it"


def _volume_deadline(plan: RunPlan, settings: Settings) -> datetime:
    """When this run's volumes are surely orphans: the tool's timeout, then reading outputs and cleanup."""
    return datetime.now(UTC) + timedelta(seconds=plan.timeout_seconds + 2 * settings.time_limit_margin_seconds)


def _volume_options(ctx: RunContext, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "label_prefix": ctx.settings.label_prefix,
        "extra_labels": labels,
        "max_file_bytes": ctx.settings.max_output_file_bytes,
        "max_total_bytes": ctx.settings.max_output_total_bytes,
    }


def _run_tool(plan: RunPlan, ctx: RunContext, workspace: Workspace, image: str) -> ToolRun:
    spec = _container_spec(plan, ctx.settings, workspace, image)

    def tick(elapsed: float, lines: int) -> None:
        ctx.report(Stage.RUNNING, {"elapsed_seconds": round(elapsed, 1), "output_lines": lines})

    watch = isolation.Watch(on_tick=tick, tail_bytes=ctx.settings.stdout_tail_bytes)
    started = time.monotonic()
    with ctx.stage(Stage.RUNNING, elapsed_seconds=0.0, output_lines=0):
        try:
            if isinstance(workspace, isolation.StreamedWorkspace):
                return ToolRun(workspace.run(spec, plan.timeout_seconds, watch=watch))
            return ToolRun(isolation.run_container(ctx.client, spec, plan.timeout_seconds, watch=watch, pull=False))
        except ctx.interruptions:
            # The caller interrupted the run mid-tool: the container was killed (and, but for a streamed one,
            # removed); keep what the tool wrote so far and report the run as timed out.
            logger.warning("run interrupted while the tool ran task=%s workspace=%s", ctx.task_id, workspace.name)
            elapsed = int((time.monotonic() - started) * 1000)
            return ToolRun(isolation.ContainerResult(exit_code=None, timed_out=True, duration_ms=elapsed), True)


def _container_spec(plan: RunPlan, settings: Settings, workspace: Workspace, image: str) -> isolation.ContainerSpec:
    deadline = datetime.now(UTC) + timedelta(seconds=plan.timeout_seconds) + CONTAINER_DEADLINE_GRACE
    if isinstance(workspace, isolation.StreamedWorkspace) and workspace.identity.deadline is not None:
        # Its outputs are read from it (stdout, or its mount after a timeout): it lives as long as the volumes.
        deadline = max(deadline, workspace.identity.deadline)
    return isolation.ContainerSpec(
        image=image,
        entrypoint=plan.spec.entrypoint,
        argv=plan.invocation.argv,
        mounts=workspace.mounts(INPUTS, OUTPUTS),
        labels=workspace.container_labels(isolation.Role.TOOL, deadline=deadline),
        network=plan.spec.network or settings.tool_network,
        user=plan.spec.user or isolation.TOOL_USER,
        cap_add=plan.spec.cap_add,
        limits=settings.container_limits(),
        environment=dict(plan.spec.environment),
        image_hint=_image_hint(plan),
    )


def _cleanup(ctx: RunContext, workspace: Workspace, *, verify: bool) -> None:
    """Remove the workspace; unless the tool container is known gone, check that its volumes went too."""
    existed = workspace.exists
    gone = workspace.cleanup(verify=verify)
    if ctx.metrics and existed:
        for _volume in ("inputs", "outputs"):
            ctx.metrics.volume_done(gone)


def _outcome(plan: RunPlan, run: ToolRun, read: OutputFiles, found: Findings) -> Outcome:
    if read.refused:
        return Outcome(Status.TOOL_FAILED, f"its outputs were refused: {read.refused}")
    c = run.container
    result = outcome(c.exit_code, c.timed_out or run.interrupted, c.oom_killed, plan.timeout_seconds)
    if found.parse_error is None:
        return result
    why = f"its output could not be parsed after {found.count} finding(s): {found.parse_error}"
    if result.status is Status.OK:
        return Outcome(Status.TOOL_FAILED, why)
    return Outcome(result.status, f"{result.reason}; {why}")


def _result(plan: RunPlan, ctx: RunContext, image: str, ended: _Ended, started: float) -> RunResult:
    c, result, found, read = ended.run.container, ended.outcome, ended.found, ended.read
    return RunResult(
        tool=plan.spec.name,
        tenant_id=plan.tenant_id,
        run_id=plan.run_id,
        task_id=ctx.task_id,
        image=image,
        exit_code=c.exit_code,
        status=result.status,
        reason=result.reason,
        findings=found.inline,
        findings_truncated=found.truncated,
        stats=RunStats(
            findings=found.count,
            duration_ms=int((time.monotonic() - started) * 1000),
            tool_duration_ms=c.duration_ms,
            bytes_in=plan.input_bytes,
            bytes_out=read.size,
            stdout_lines=c.stdout_lines,
        ),
        stderr_tail=c.stderr_tail,
        outputs=read.sizes,
        missing_outputs=read.missing,
        artifacts=[r.as_dict() for r in ended.artifacts],
        notices=list(plan.notices),
    )
