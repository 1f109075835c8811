"""A run request as it arrives, and its validation into a plan with everything needed to run, before any Docker call."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from itertools import islice
from typing import Any

from pydantic import ValidationError

import isolation
from config import Settings
from tasks.errors import TaskInputError
from tasks.tools import Invocation, ToolParams, ToolSpec
from tasks.tools.chunking import Chunking, Unit, split, weight
from tasks.tools.rates import with_rate


@dataclass(frozen=True)
class RunRequest:
    """A run request as a caller sent it: not validated yet, so every field is whatever arrived."""

    tool: object
    tenant_id: object
    run_id: object
    params: object = None
    files: object = None
    chunk: object = None  # a chunk's place in its parent ({"parent", "index", "attempt"}); None for any other run


MAX_CHUNKS = 20_000  # chunks one run makes at most: each is a message, an outcome and a result while it runs


@dataclass(frozen=True)
class Chunked:
    """A run that splits: its chunks hold at most `size` of the targets' `weight` (units of its tool's Chunking)."""

    size: int
    chunks: int
    weight: int
    notice: str | None = None  # a request's chunk_size raised to keep the chunks at most MAX_CHUNKS


@dataclass(frozen=True)
class RunPlan:
    """A validated run: the tool, who it is for, its invocation, input files and timeout."""

    spec: ToolSpec
    tenant_id: str
    run_id: str
    params: ToolParams
    invocation: Invocation
    inputs: dict[str, str | bytes]
    timeout_seconds: int
    notices: tuple[str, ...] = ()  # what a setting capped (the result's `notices`): capped and said, not refused
    # A parent (more targets than a chunk holds): its params hold every target (for the scope check) and its
    # invocation is its first chunk's; it runs no tool itself, its chunks do (tasks/worker/chunks.py).
    chunked: Chunked | None = None

    @cached_property
    def input_bytes(self) -> int:
        """Total size of the input files."""
        return sum(len(v.encode() if isinstance(v, str) else v) for v in self.inputs.values())


def plan_run(
    catalogue: Mapping[str, ToolSpec],
    request: RunRequest,
    *,
    max_input_bytes: int,
    max_timeout_seconds: int,
    max_cache_age_seconds: int | None = None,
    max_chunked_targets: int = 1_000_000,
) -> RunPlan:
    """Validate a request; raise TaskInputError with a message a caller can act on.

    A value over a setting's cap is capped, not refused, and the plan's notices say so: the timeout here, the
    cache age where the cache reads it (given `max_cache_age_seconds`: a run that uses the cache).
    """
    spec = _spec(catalogue, request.tool)
    try:
        tenant = isolation.validate_identifier("tenant_id", request.tenant_id)
        run = isolation.validate_identifier("run_id", request.run_id)
    except isolation.InvalidIdentifierError as exc:
        raise TaskInputError(str(exc)) from None
    split = _split(spec, request.params, max_chunked_targets) if request.chunk is None else None
    model, chunked = split if split is not None else (_params(spec, request.params), None)
    invocation = spec.build(model if chunked is None else _first_chunk(spec, model))
    inputs = _merge_inputs(invocation.input_files, _files(request.files))
    timeout = _timeout(spec, model, max_timeout_seconds)
    notices = _capped("timeout_seconds", model.timeout_seconds, max_timeout_seconds, "TOOLRUNNER_MAX_TIMEOUT_SECONDS")
    if max_cache_age_seconds is not None:
        asked = model.cache_max_age_seconds
        notices += _capped("cache_max_age_seconds", asked, max_cache_age_seconds, "TOOLRUNNER_CACHE_MAX_AGE_SECONDS")
    if chunked is not None and chunked.notice:
        notices += (chunked.notice,)
    plan = RunPlan(spec, tenant, run, model, invocation, inputs, timeout, notices, chunked)
    if plan.input_bytes > max_input_bytes:
        raise TaskInputError(f"input files add up to {plan.input_bytes} bytes, over the cap of {max_input_bytes}")
    return plan


def at_rate(plan: RunPlan, rate: float) -> RunPlan:
    """The plan with its tool told to send at most `rate` requests (or packets) per second, through its own option
    (ToolSpec.rate_param); a request's own lower rate stays. Rates change argv only: the input files stay."""
    params = with_rate(plan.spec, plan.params, rate)
    if params == plan.params:
        return plan
    return replace(plan, params=params, invocation=replace(plan.invocation, argv=plan.spec.build(params).argv))


def unleased(plan: RunPlan, settings: Settings, reaches_hosts: bool) -> RunPlan:
    """The plan of a run that holds no host lease (in this process, no admission): when politeness is on and it
    reaches any host, its tool is told the default share of a host, TOOLRUNNER_HOST_MAX_RPS over
    TOOLRUNNER_HOST_MAX_RUNNING."""
    if settings.politeness == "off" or not reaches_hosts:
        return plan
    return at_rate(plan, settings.host_max_rps / settings.host_max_running)


def is_parent(spec: ToolSpec, params: object) -> bool:
    """Whether a request's targets are more than one chunk of its tool's: cheap, it stops counting past a chunk."""
    chunking = spec.chunking
    if chunking is None or not isinstance(params, dict):
        return False
    targets, size = params.get(chunking.field), _chunk_size(chunking, params.get("chunk_size"))
    if size is None or not isinstance(targets, list | tuple) or not all(isinstance(t, str) for t in targets):
        return False  # the params model says what is wrong
    return weight(islice(targets, size + 1), chunking.unit) > size


def chunk_params(plan: RunPlan) -> Iterator[dict[str, Any]]:
    """The params of each chunk of a parent, in order, made one at a time: its own params, a chunk of its targets."""
    chunking, chunked = plan.spec.chunking, plan.chunked
    if chunking is None or chunked is None:
        raise ValueError(f"run {plan.run_id} is not chunked")
    targets = getattr(plan.params, chunking.field)
    rest = plan.params.model_dump(mode="json", exclude={chunking.field, "chunk_size"}, exclude_defaults=True)
    for piece in split(targets, chunked.size, chunking.unit):
        yield {**rest, chunking.field: piece}


def _split(spec: ToolSpec, params: object, max_targets: int) -> tuple[ToolParams, Chunked] | None:
    """A parent's params and its chunking, each chunk validated as its run will be; None for a run of one chunk."""
    chunking = spec.chunking
    if chunking is None:
        if isinstance(params, dict) and params.get("chunk_size") is not None:
            raise TaskInputError(f"{spec.name} does not split its targets: chunk_size is not one of its params")
        return None
    if not is_parent(spec, params):
        return None
    assert isinstance(params, dict)  # is_parent said so
    targets: list[str] = list(params[chunking.field])
    size = _chunk_size(chunking, params.get("chunk_size"))
    assert size is not None  # is_parent said so
    total = weight(targets, chunking.unit)
    if total > max_targets:
        counted = "addresses" if chunking.unit is Unit.ADDRESSES else "targets"
        raise TaskInputError(
            f"{total} {counted} is over the cap of {max_targets} for a chunked run (TOOLRUNNER_MAX_CHUNKED_TARGETS)"
        )
    size, notice = _bounded(chunking, size, total)
    rest = {k: v for k, v in params.items() if k not in (chunking.field, "chunk_size")}
    first, chunks = _validated(spec, chunking, rest, targets, size)
    every = first.model_copy(update={chunking.field: tuple(targets), "chunk_size": size})
    return every, Chunked(size, chunks, total, notice)


def _bounded(chunking: Chunking, size: int, total: int) -> tuple[int, str | None]:
    """A request's own chunk size, raised (and said) when it would make more than MAX_CHUNKS chunks."""
    if -(-total // size) <= MAX_CHUNKS or size >= chunking.size:
        return size, None
    raised = -(-total // MAX_CHUNKS)
    if chunking.unit is Unit.ADDRESSES:  # networks split in powers of two: a chunk's size is one too
        raised = 1 << (raised - 1).bit_length()
    raised = min(chunking.size, raised)
    return raised, f"chunk_size={size} was raised to {raised}: a run makes at most {MAX_CHUNKS} chunks"


def _validated(
    spec: ToolSpec, chunking: Chunking, rest: dict[str, Any], targets: list[str], size: int
) -> tuple[ToolParams, int]:
    """Every chunk's params validated as its run will validate them: the first chunk's, and how many chunks."""
    first: ToolParams | None = None
    chunks = 0
    for piece in split(targets, size, chunking.unit):
        try:
            model = _params(spec, {**rest, chunking.field: piece})
        except TaskInputError as exc:
            raise TaskInputError(f"chunk {chunks} of {spec.name}'s targets: {exc}") from None
        first = first or model
        chunks += 1
    assert first is not None  # more than one chunk's worth of targets
    if chunks > MAX_CHUNKS:
        raise TaskInputError(f"the targets make {chunks} chunks of {size}, over {MAX_CHUNKS}: send a larger chunk_size")
    return first, chunks


def _chunk_size(chunking: Chunking, asked: object) -> int | None:
    """The chunk size a request gets: its own when lower than its tool's; None when what it asked is no size."""
    if asked is None:
        return chunking.size
    if type(asked) is not int or asked < 1:
        return None
    return min(asked, chunking.size)


def _first_chunk(spec: ToolSpec, every: ToolParams) -> ToolParams:
    chunking = spec.chunking
    assert chunking is not None and every.chunk_size is not None
    first = next(split(getattr(every, chunking.field), every.chunk_size, chunking.unit))
    return every.model_copy(update={chunking.field: tuple(first), "chunk_size": None})


def _spec(catalogue: Mapping[str, ToolSpec], tool: object) -> ToolSpec:
    if not isinstance(tool, str) or tool not in catalogue:
        raise TaskInputError(f"unknown tool {tool!r}; known tools: {', '.join(sorted(catalogue))}")
    return catalogue[tool]


def _params(spec: ToolSpec, params: object) -> ToolParams:
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TaskInputError(f"params must be a JSON object, got {type(params).__name__}")
    try:
        return spec.params_model.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(_describe_error(e) for e in exc.errors(include_url=False))
        raise TaskInputError(f"invalid params for {spec.name}: {problems}") from None


def _describe_error(error: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", ())) or "params"
    return f"{where}: {error.get('msg', 'invalid')}"


def _files(files: object) -> dict[str, str]:
    if files is None:
        return {}
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise TaskInputError("files must map file names to str contents")
    try:
        isolation.validate_filenames(files)
    except isolation.InvalidFilenameError as exc:
        raise TaskInputError(str(exc)) from None
    return files


def _merge_inputs(generated: Mapping[str, str | bytes], extra: Mapping[str, str]) -> dict[str, str | bytes]:
    clash = sorted(generated.keys() & extra.keys())
    if clash:
        raise TaskInputError(f"files may not replace the tool's own input files: {', '.join(clash)}")
    merged: dict[str, str | bytes] = {**generated, **extra}
    try:
        isolation.validate_filenames(merged)
    except isolation.InvalidFilenameError as exc:
        raise TaskInputError(str(exc)) from None
    return merged


def _timeout(spec: ToolSpec, params: ToolParams, cap: int) -> int:
    wanted = params.timeout_seconds or spec.default_timeout
    return min(wanted, cap)


def _capped(param: str, asked: int | None, cap: int, setting: str) -> tuple[str, ...]:
    """The notice for a requested value over its setting's cap, or none."""
    if asked is None or asked <= cap:
        return ()
    return (f"{param}={asked} was capped to {cap} by {setting}",)
