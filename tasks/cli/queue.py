"""`toolrunner run` through the queue: publish once (no retrying an unreachable broker), say the task id at once,
then follow the run's progress, saying so when no worker has taken it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from celery import states

from tasks.cli.console import err, plain

# A worker writes the run's first state (PROGRESS, admitted or parked) within a second of taking its message:
# still PENDING this long after the publish, nobody has taken it (no worker, or none on this broker and queue).
NO_WORKER_AFTER_SECONDS = 5.0
START_A_WORKER = "celery -A tasks worker --concurrency 2 (with the same TOOLRUNNER_* settings, broker included)"


class Handle(Protocol):
    """What the wait reads of a queued run: Celery's AsyncResult."""

    id: str

    @property
    def state(self) -> str: ...

    @property
    def info(self) -> Any: ...

    def ready(self) -> bool: ...

    def get(self, *, propagate: bool) -> Any: ...


def publish(tool: str, tenant: str, run_id: str, params: dict[str, Any], files: dict[str, str]) -> Handle:
    """Queue the run once; an unreachable broker raises at once (Kombu would retry the publish for seconds)."""
    from tasks.worker import run_tool  # the Celery app is only needed here

    handle: Handle = run_tool.apply_async((tool, tenant, run_id, params, files or None), retry=False)
    return handle


def announce(handle: Handle, tool: str, tenant: str) -> None:
    """The task id, on stderr as soon as the run is queued (stdout stays the result, --json's included)."""
    line = f"{tool}: queued as task {handle.id} (cancel it with: toolrunner cancel {handle.id} --tenant {tenant})"
    err.print(plain(line), highlight=False, soft_wrap=True)


def wait_for(handle: Handle, tool: str, *, no_worker_after: float = NO_WORKER_AFTER_SECONDS, poll: float = 0.25) -> Any:
    """Follow the run until it ends and return its result; say once when no worker has taken it, and keep waiting."""
    started = time.monotonic()
    told = False
    with err.status(f"{tool}: queued ({handle.id})") as status:
        while not handle.ready():
            elapsed = time.monotonic() - started
            state = handle.state
            if not told and elapsed >= no_worker_after and state == states.PENDING:
                err.print(plain(no_worker(handle.id)), highlight=False, soft_wrap=True)
                told = True
            info = handle.info if isinstance(handle.info, dict) else {}
            status.update(stage_line(tool, str(info.get("stage", state.lower())), info, elapsed))
            time.sleep(poll)
    return handle.get(propagate=True)


def no_worker(task_id: str) -> str:
    """The line said when a queued run is still PENDING after NO_WORKER_AFTER_SECONDS."""
    return f"no worker has taken task {task_id} yet; still waiting (start one with: {START_A_WORKER})"


def stage_line(tool: str, stage: str, meta: Mapping[str, Any], elapsed: float) -> str:
    """The status line of a run: its tool, stage, time so far and, while it runs, its output lines."""
    extra = f", {meta['output_lines']} output lines" if "output_lines" in meta else ""
    return f"{tool}: {stage} ({elapsed:.1f}s{extra})"
