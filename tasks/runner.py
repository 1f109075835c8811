"""Running a validated plan: volumes in and out, the tool container, outputs parsed into findings."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import docker
from celery.exceptions import SoftTimeLimitExceeded

import isolation
from config import Settings
from tasks.metrics import Metrics
from tasks.outcome import TIMED_OUT, TOOL_FAILED, Outcome, outcome
from tasks.request import RunPlan
from tasks.tools.base import INPUTS, OUTPUTS

logger = logging.getLogger(__name__)

Reporter = Callable[[str, Mapping[str, Any]], None]
Volume = isolation.IsolatedContainerVolume


@dataclass(frozen=True)
class RunContext:
    """Where and how a plan runs: the engine, the settings, the task id, a progress reporter, metrics."""

    client: docker.DockerClient
    settings: Settings
    task_id: str
    report: Reporter
    worker: str = "local"
    metrics: Metrics | None = None

    @contextmanager
    def stage(self, name: str, **meta: Any) -> Iterator[None]:
        """Report that a lifecycle stage starts and record how long it took."""
        self.report(name, meta)
        with self.timed(name):
            yield

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Record how long a lifecycle stage took."""
        started = time.monotonic()
        try:
            yield
        finally:
            if self.metrics:
                self.metrics.stage_seconds.labels(name).observe(time.monotonic() - started)


def execute(plan: RunPlan, ctx: RunContext) -> dict[str, Any]:
    """Run plan end to end and return the result dict; volumes and containers are always removed."""
    started = time.monotonic()
    labels = {"task": ctx.task_id, "tool": plan.spec.name, "worker": ctx.worker}
    new_volume = partial(Volume, plan.tenant_id, plan.run_id, ctx.client, **_volume_options(ctx, labels))
    inputs, outputs = new_volume(), new_volume()
    try:
        with ctx.stage("preparing_inputs", files=len(plan.inputs)):
            inputs.initialize(plan.inputs)
            outputs.initialize({})
        run, interrupted = _run_tool(plan, ctx, inputs, outputs)
        with ctx.stage("reading_outputs", files=len(plan.invocation.output_files)):
            files, missing, refused = _read_outputs(outputs, plan.invocation.output_files)
    finally:
        # Cleanup runs even if reporting the stage raises (e.g. Celery's soft time limit fires right then).
        try:
            ctx.report("cleaning_up", {})
        finally:
            with ctx.timed("cleaning_up"):
                _cleanup(ctx, inputs, outputs)
    findings = plan.spec.parse(files)
    result = outcome(run.exit_code, run.timed_out or interrupted, run.oom_killed, plan.timeout_seconds)
    if refused:
        result = Outcome(TOOL_FAILED, f"its outputs were refused: {refused}")
    _count(ctx, plan, run, result, files)
    return _result(plan, ctx, run, result, findings, files, missing, started)


def _volume_options(ctx: RunContext, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "label_prefix": ctx.settings.label_prefix,
        "extra_labels": labels,
        "max_file_bytes": ctx.settings.max_output_file_bytes,
        "max_total_bytes": ctx.settings.max_output_total_bytes,
    }


def _run_tool(
    plan: RunPlan, ctx: RunContext, inputs: Volume, outputs: Volume
) -> tuple[isolation.ContainerResult, bool]:
    spec = _container_spec(plan, ctx.settings, inputs, outputs)

    def tick(elapsed: float, lines: int) -> None:
        ctx.report("running", {"elapsed_seconds": round(elapsed, 1), "output_lines": lines})

    started = time.monotonic()
    with ctx.stage("running", elapsed_seconds=0.0, output_lines=0):
        try:
            return isolation.run_container(
                ctx.client, spec, plan.timeout_seconds, on_tick=tick, tail_bytes=ctx.settings.stdout_tail_bytes
            ), False
        except SoftTimeLimitExceeded:
            # Celery's soft limit fired mid-run: run_container already killed and removed the container;
            # keep what the tool wrote so far and report the run as timed out.
            logger.warning("soft time limit during tool run task=%s volume=%s", ctx.task_id, outputs.name)
            elapsed = int((time.monotonic() - started) * 1000)
            return isolation.ContainerResult(None, True, False, elapsed, "", "", 0), True


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
        limits=isolation.ContainerLimits(
            settings.memory_limit, settings.cpus, settings.pids_limit, settings.tmpfs_size, settings.file_size_limit
        ),
        image_hint=f"point TOOLRUNNER_IMAGE_{plan.spec.name.upper()} at an image that has it",
    )


def _read_outputs(volume: Volume, names: list[str]) -> tuple[dict[str, bytes], list[str], str | None]:
    """Read the outputs: (files, names the tool did not write, why the outputs were refused or None).

    A tool that wrote nothing is not an error here; one whose outputs are links or over the caps gets
    no findings and a tool_failed status saying why, rather than a task failure without a result.
    """
    missing: list[str] = []
    try:
        try:
            return volume.read_files(names), missing, None
        except isolation.MissingOutputError as exc:
            missing = exc.missing
            present = [n for n in names if n not in exc.missing]
            return (volume.read_files(present) if present else {}), missing, None
    except (isolation.OutputTooLargeError, isolation.UnsafeOutputError) as exc:
        logger.warning("outputs refused volume=%s: %s", volume.name, exc)
        return {}, missing, str(exc)


def _cleanup(ctx: RunContext, *volumes: Volume) -> None:
    """Clean up every volume; an exception while cleaning one (a soft time limit) still lets the next run."""
    with ExitStack() as stack:
        for volume in volumes:
            stack.callback(_cleanup_one, ctx, volume)


def _cleanup_one(ctx: RunContext, volume: Volume) -> None:
    existed = volume.exists
    gone = volume.cleanup()
    if ctx.metrics and existed:
        ctx.metrics.volumes_created.inc()
        (ctx.metrics.volumes_removed if gone else ctx.metrics.volume_cleanup_failures).inc()


def _count(
    ctx: RunContext, plan: RunPlan, run: isolation.ContainerResult, result: Outcome, files: Mapping[str, bytes]
) -> None:
    if ctx.metrics:
        ctx.metrics.tool_runs.labels(plan.spec.name, result.status).inc()
        ctx.metrics.tool_seconds.labels(plan.spec.name).observe(run.duration_ms / 1000)
        ctx.metrics.bytes_in.inc(plan.input_bytes)
        ctx.metrics.bytes_out.inc(sum(len(v) for v in files.values()))


def _result(
    plan: RunPlan,
    ctx: RunContext,
    run: isolation.ContainerResult,
    result: Outcome,
    findings: list[dict[str, Any]],
    files: Mapping[str, bytes],
    missing: list[str],
    started: float,
) -> dict[str, Any]:
    return {
        "tool": plan.spec.name,
        "tenant_id": plan.tenant_id,
        "run_id": plan.run_id,
        "task_id": ctx.task_id,
        "image": ctx.settings.image_for(plan.spec.name, plan.spec.image),
        "exit_code": run.exit_code,
        "status": result.status,
        "reason": result.reason,
        "findings": findings,
        "stats": {
            "findings": len(findings),
            "duration_ms": int((time.monotonic() - started) * 1000),
            "tool_duration_ms": run.duration_ms,
            "bytes_in": plan.input_bytes,
            "bytes_out": sum(len(v) for v in files.values()),
            "stdout_lines": run.stdout_lines,
        },
        "stderr_tail": run.stderr_tail,
        "outputs": {name: len(data) for name, data in sorted(files.items())},
        "missing_outputs": missing,
        "timed_out": result.status == TIMED_OUT,
    }
