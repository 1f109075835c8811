"""Running a validated plan: volumes in and out, the tool container, outputs parsed into findings."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import docker
from celery.exceptions import SoftTimeLimitExceeded

import isolation
from config import Settings
from tasks.outcome import TIMED_OUT, Outcome, outcome
from tasks.request import RunPlan
from tasks.tools.base import INPUTS, OUTPUTS

logger = logging.getLogger(__name__)

Reporter = Callable[[str, Mapping[str, Any]], None]


@dataclass(frozen=True)
class RunContext:
    """Where and how a plan runs: the engine, the settings, the task id and a progress reporter."""

    client: docker.DockerClient
    settings: Settings
    task_id: str
    report: Reporter
    worker: str = "local"


def execute(plan: RunPlan, ctx: RunContext) -> dict[str, Any]:
    """Run plan end to end and return the result dict; volumes and containers are always removed."""
    started = time.monotonic()
    labels = {"task": ctx.task_id, "tool": plan.spec.name, "worker": ctx.worker}
    volume_options = _volume_options(ctx, labels)
    ctx.report("preparing_inputs", {"files": len(plan.inputs)})
    new_volume = partial(isolation.IsolatedContainerVolume, plan.tenant_id, plan.run_id, ctx.client, **volume_options)
    with new_volume() as inputs, new_volume() as outputs:
        inputs.initialize(plan.inputs)
        outputs.initialize({})
        run, interrupted = _run_tool(plan, ctx, inputs, outputs)
        ctx.report("reading_outputs", {"files": len(plan.invocation.output_files)})
        files, missing = _read_outputs(outputs, plan.invocation.output_files)
        ctx.report("cleaning_up", {})
    findings = plan.spec.parse(files)
    result = outcome(run.exit_code, run.timed_out or interrupted, run.oom_killed, plan.timeout_seconds)
    return _result(plan, ctx, run, result, findings, files, missing, started)


def _volume_options(ctx: RunContext, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "label_prefix": ctx.settings.label_prefix,
        "extra_labels": labels,
        "max_file_bytes": ctx.settings.max_output_file_bytes,
        "max_total_bytes": ctx.settings.max_output_total_bytes,
    }


def _run_tool(
    plan: RunPlan,
    ctx: RunContext,
    inputs: isolation.IsolatedContainerVolume,
    outputs: isolation.IsolatedContainerVolume,
) -> tuple[isolation.ContainerResult, bool]:
    settings = ctx.settings
    spec = isolation.ContainerSpec(
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

    def tick(elapsed: float, lines: int) -> None:
        ctx.report("running", {"elapsed_seconds": round(elapsed, 1), "output_lines": lines})

    ctx.report("running", {"elapsed_seconds": 0.0, "output_lines": 0})
    started = time.monotonic()
    try:
        return isolation.run_container(
            ctx.client, spec, plan.timeout_seconds, on_tick=tick, tail_bytes=settings.stdout_tail_bytes
        ), False
    except SoftTimeLimitExceeded:
        # Celery's soft limit fired mid-run: run_container already killed and removed the container; keep
        # what the tool wrote so far and report the run as timed out.
        logger.warning("soft time limit during tool run task=%s volume=%s", ctx.task_id, outputs.name)
        elapsed = int((time.monotonic() - started) * 1000)
        return isolation.ContainerResult(None, True, False, elapsed, "", "", 0), True


def _read_outputs(volume: isolation.IsolatedContainerVolume, names: list[str]) -> tuple[dict[str, bytes], list[str]]:
    """Read the outputs the tool wrote; a tool that wrote nothing (or failed early) is not an error here."""
    try:
        return volume.read_files(names), []
    except isolation.MissingOutputError as exc:
        present = [n for n in names if n not in exc.missing]
        return (volume.read_files(present) if present else {}), exc.missing


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
