"""A big run's targets travel beside its message, not in it: in the artifact store, under the tenant's key.

A producer on this app (`run_tool.delay`, `app.send_task`, the CLI) that sends more than OFFLOAD_AFTER targets
in a splitting tool's target field stores them as one encrypted artifact and sends a reference in their place
(`{"artifact": URI}`); the worker reads them back at the plan step, checked against the run's tenant. So the
message of a million-target run stays a few hundred bytes, in the queue and wherever Redis copies it (unacked,
a drain, a put-back). The artifact lives under a task id of its own (`targets_task_id`) and is kept for the
artifact retention, like any other: the record of what was asked. A producer that cannot open the artifact store
sends the targets inline, with a warning.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from tasks.artifacts import ArtifactError, Artifacts
from tasks.errors import TaskInputError
from tasks.service import RunRequest
from tasks.tools import ToolSpec
from tasks.worker.delivery import RUN_TASK

logger = logging.getLogger(__name__)

OFFLOAD_AFTER = 1024  # targets a run message carries inline at most (a chunk's, for every tool, stays under it)
NAME = "targets.json"
MAX_BYTES = 256 << 20  # a million targets of up to ~250 characters
_NAMESPACE = uuid.UUID("0c6b3f4e-5a51-4f3c-8d0e-7b4a7d2e9c61")


def targets_task_id(task_id: str) -> str:
    """The task id a run's offloaded targets are stored under (its own index entry in the artifact store)."""
    return str(uuid.uuid5(_NAMESPACE, task_id))


def offload(
    artifacts: Callable[[], Artifacts], spec: ToolSpec | None, task_id: str, bound: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The params to send instead of these (their targets stored), or None to send them as they are. The store is
    opened only for a run that has that many targets."""
    chunking = spec.chunking if spec is not None else None
    params = bound.get("params")
    if chunking is None or not isinstance(params, dict) or bound.get("chunk") is not None:
        return None
    targets = params.get(chunking.field)
    if not isinstance(targets, list | tuple) or len(targets) <= OFFLOAD_AFTER:
        return None
    try:
        sink = artifacts().for_task(str(bound["tenant_id"]), str(bound["run_id"]), targets_task_id(task_id))
        with sink.open(NAME) as out:
            out.write(json.dumps(list(targets), separators=(",", ":")).encode())
        uri = sink.records[-1].uri
    except (ArtifactError, OSError, ValueError) as exc:
        logger.warning("targets of task=%s sent inline: the artifact store is not usable here: %s", task_id, exc)
        return None
    return {**params, chunking.field: {"artifact": uri}}


def loaded(artifacts: Artifacts | None, spec: ToolSpec | None, request: RunRequest, task_id: str) -> RunRequest:
    """The request with offloaded targets read back; bad input when they cannot be (another tenant's, missing).

    Whatever URI the reference names, what is read is this run's own targets artifact (`targets_task_id`), for the
    run's tenant, and at most MAX_BYTES of it: a reference cannot point a run at any other artifact."""
    chunking = spec.chunking if spec is not None else None
    params = request.params
    if chunking is None or not isinstance(params, dict):
        return request
    reference = params.get(chunking.field)
    if not isinstance(reference, dict):
        return request
    uri = reference.get("artifact")
    if artifacts is None or not isinstance(uri, str) or set(reference) != {"artifact"}:
        raise TaskInputError(f"{chunking.field} must be a list of targets")
    tenant, stored = str(request.tenant_id), targets_task_id(task_id)
    try:
        size = artifacts.index(stored, tenant=tenant).record(NAME).size
        if size > MAX_BYTES:
            raise TaskInputError(f"the run's targets artifact is {size} bytes, over {MAX_BYTES}")
        with artifacts.open_artifact(stored, NAME, tenant=tenant) as stream:
            targets = json.load(stream)
    except (ArtifactError, ValueError) as exc:
        raise TaskInputError(f"the run's targets could not be read from {uri}: {exc}") from None
    return RunRequest(
        request.tool, request.tenant_id, request.run_id, {**params, chunking.field: targets}, request.files,
        request.chunk,
    )  # fmt: skip


def with_params(task: str, args: Any, kwargs: Any, params: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """A run message's arguments with its params replaced, wherever the producer put them (by position or name)."""
    args, kwargs = list(args or ()), dict(kwargs or {})
    if "params" in kwargs:
        return args, {**kwargs, "params": params}
    position = 3 if task == RUN_TASK else 2  # (tool,) tenant_id, run_id, params, files
    args[position] = params
    return args, kwargs
