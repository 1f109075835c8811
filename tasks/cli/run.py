"""The `toolrunner run` command: validate a run request, then run it in this process or through the queue."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import typer
from pydantic import BaseModel
from rich.table import Table

import isolation
from config import Settings, load_settings
from tasks.cli import queue
from tasks.cli.artifacts import configured_artifacts
from tasks.cli.console import err, out, plain
from tasks.errors import IntrusiveToolError, OutOfScopeError, UnreachableTargetError, UserError
from tasks.scope import store
from tasks.scope.check import check, outside
from tasks.scope.host import Span
from tasks.scope.matcher import Scope
from tasks.scope.policy import checker
from tasks.service import RunContext, RunPlan, RunRequest, Stage, Status, execute, plan_run
from tasks.service.intrusive import refuse_unless_opted_in
from tasks.service.plan import unleased
from tasks.tools import ToolSpec, load_catalogue

app = typer.Typer()  # mounted without a name: `run` is a command of `toolrunner` itself
SCOPE_HELP = "in this process only: an entry of the tenant's scope (repeat); through the queue, `toolrunner scope add`"
INTRUSIVE_HELP = (
    "in this process only: let an intrusive tool (sqlmap, gobuster, ffuf) run for the tenant; through the queue, "
    "`toolrunner limits set --tenant T --allow-intrusive`"
)
# How a run in this process opts its tenant in (the refusal's message says it).
LOCAL_OPT_IN = (
    "add --allow-intrusive to run it in this process (through the queue: "
    "`toolrunner limits set --tenant {tenant} --allow-intrusive`)"
)


@app.command()
def run(
    tool: Annotated[str, typer.Argument(help="tool name, see `toolrunner tools`")],
    tenant: Annotated[str, typer.Option("--tenant", help="tenant id")],
    run_id: Annotated[str | None, typer.Option("--run", help="run id (default: cli-<time>)")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="k=v; repeat a key for a list")] = None,
    file: Annotated[list[str] | None, typer.Option("--file", "-f", help="name=path of an extra input file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the whole result as JSON")] = False,
    scope: Annotated[list[str] | None, typer.Option("--scope", help=SCOPE_HELP)] = None,
    allow_intrusive: Annotated[bool, typer.Option("--allow-intrusive", help=INTRUSIVE_HELP)] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="through the queue: print the task id and exit 0")] = False,
) -> None:
    """Run TOOL for a tenant: in this process on the local engine, or through the queue if a broker is set."""
    settings = load_settings()
    catalogue = load_catalogue(settings.extra_tool_modules)
    spec = _spec(catalogue, tool)
    params = parse_params(param or [], spec)
    files = _read_files(file or [])
    run_id = run_id or f"cli-{int(time.time())}"
    # Validate here in either mode: a bad request fails at once, before anything is queued or created.
    request = RunRequest(tool, tenant, run_id, params, files)
    plan = plan_run(
        catalogue, request, max_input_bytes=settings.max_input_bytes, max_timeout_seconds=settings.max_timeout_seconds
    )
    # The queue gets the params as the model read them (a number as a number): one conversion, here.
    params = plan.params.model_dump(mode="json", exclude_unset=True)
    if settings.broker_url:
        local_only = bool(scope) or allow_intrusive
        result = _through_queue(plan, params, files, local_only=local_only, wait=not no_wait, as_json=as_json)
    elif no_wait:
        raise UserError("--no-wait is for runs through the queue: set TOOLRUNNER_BROKER_URL (and start a worker)")
    else:
        _local_opt_in(plan, allow_intrusive)
        outside_scope, reached = _local_scope(settings, plan, scope or [])
        result = _in_process(settings, unleased(plan, settings, bool(reached)), outside_scope)
    if as_json:
        out.print_json(json.dumps(result))
    else:
        print_result(result, spec)
    raise typer.Exit(0 if result["status"] == Status.OK else 1)


def parse_params(pairs: list[str], spec: ToolSpec) -> dict[str, Any]:
    """Turn k=v pairs into params, each value converted by the field it fills.

    The text stays text: the params model converts it to the field's type (`ports=80` stays the string
    a `str` field wants, `top_ports=100` becomes the number an `int` field wants). A list field collects
    repeated keys; only a field that wants a structure (a mapping or a model) reads its value as JSON,
    and a list field given one JSON list (`targets=["a","b"]`) takes it as the list.
    """
    params: dict[str, Any] = {}
    fields = spec.params_model.model_fields
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--param {pair!r} must look like key=value")
        annotation = fields[key].annotation if key in fields else None
        if _kinds(annotation) & _SEQUENCES:
            params.setdefault(key, []).extend(_list_items(raw))
        elif key in params:
            raise UserError(f"--param {key} is given twice but takes one value")
        else:
            params[key] = _json(key, raw) if _kinds(annotation) & _STRUCTURES else raw
    return params


_SEQUENCES: set[object] = {list, tuple}
_STRUCTURES: set[object] = {dict}


def _kinds(annotation: Any) -> set[object]:
    """The container types an annotation allows (also inside Optional[...]); dict for models."""
    kinds: set[object] = set()
    for part in (annotation, *get_args(annotation)):
        origin = get_origin(part) or part
        if isinstance(origin, type) and issubclass(origin, BaseModel):
            origin = dict
        kinds.add(origin)
    return kinds


def _list_items(raw: str) -> list[Any]:
    if raw.startswith("["):
        try:
            value = json.loads(raw)
        except ValueError:
            return [raw]
        if isinstance(value, list):
            return value
    return [raw]


def _json(key: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise UserError(f"--param {key} takes a JSON value, got {raw!r}") from None


def _spec(catalogue: Mapping[str, ToolSpec], tool: str) -> ToolSpec:
    if tool not in catalogue:
        raise UserError(f"unknown tool {tool!r}; known tools: {', '.join(catalogue)}")
    return catalogue[tool]


def _read_files(pairs: list[str]) -> dict[str, str]:
    files: dict[str, str] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--file {pair!r} must look like name=path")
        try:
            files[name] = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {path}: {exc}") from None
    return files


def _local_scope(
    settings: Settings, plan: RunPlan, entries: list[str]
) -> tuple[Callable[[str], bool] | None, list[Span]]:
    """Check the plan against --scope as a worker checks a run against the tenant's scope (with TOOLRUNNER_SCOPE=off,
    against the deny list, private ranges and loopback reach only, as a worker does); the findings' marker and
    where the run connects."""
    local = None if settings.scope == "off" else _scope_given(settings, plan, entries)
    scope_checker = checker(settings)
    network = plan.spec.network or settings.tool_network
    try:
        reached = check(plan.spec, plan.params, plan.tenant_id, scope=local, network=network, checker=scope_checker)
    except OutOfScopeError as exc:
        raise UserError(f"{exc} (in this process the scope is what --scope gives)") from None
    except UnreachableTargetError as exc:
        raise UserError(str(exc)) from None
    return (outside(local, scope_checker.policy) if local is not None else None), reached


def _local_opt_in(plan: RunPlan, allowed: bool) -> None:
    """Refuse an intrusive tool in this process unless --allow-intrusive says the tenant may run it."""
    try:
        refuse_unless_opted_in(
            plan.spec, plan.tenant_id, opted_in=allowed, fix=LOCAL_OPT_IN.format(tenant=plan.tenant_id)
        )
    except IntrusiveToolError as exc:
        raise UserError(str(exc)) from None


def _scope_given(settings: Settings, plan: RunPlan, entries: list[str]) -> Scope:
    if not entries and plan.spec.targets is not None:
        raise UserError(
            f"in this process the tenant's scope is what --scope gives: add --scope ENTRY (repeat it) for every "
            f"address, network or domain {plan.tenant_id} may scan, or set TOOLRUNNER_SCOPE=off (single-tenant only)"
        )
    canonical = store.canonical(
        entries, max_prefix_v4=settings.scope_max_prefix_v4, max_prefix_v6=settings.scope_max_prefix_v6
    ) if entries else []  # fmt: skip
    return Scope.of(canonical)


def _in_process(settings: Settings, plan: RunPlan, outside_scope: Callable[[str], bool] | None) -> dict[str, Any]:
    tool = plan.spec.name
    with err.status(f"{tool}: starting") as status:
        started = time.monotonic()

        def report(stage: Stage, meta: Mapping[str, Any]) -> None:
            status.update(queue.stage_line(tool, stage, meta, time.monotonic() - started))

        ctx = RunContext(
            isolation.connect(None), settings, f"cli-{uuid.uuid4()}", report, "cli", artifacts=configured_artifacts(),
            outside=outside_scope, images=isolation.SeenImages(),  # its one inspect also tells the streamed path
        )  # fmt: skip
        return execute(plan, ctx).as_dict()


def _through_queue(
    plan: RunPlan, params: dict[str, Any], files: dict[str, str], *, local_only: bool, wait: bool, as_json: bool
) -> dict[str, Any]:
    """Queue the run and wait for its result; with --no-wait print only the task id (JSON with --json) and exit 0."""
    if local_only:
        raise UserError(
            "--scope and --allow-intrusive are for runs in this process: with a broker, use "
            "`toolrunner scope add --tenant T` and `toolrunner limits set --tenant T --allow-intrusive`"
        )
    tool, tenant = plan.spec.name, plan.tenant_id
    handle = queue.publish(tool, tenant, plan.run_id, params, files)
    if not wait:
        if as_json:
            out.print_json(json.dumps({"task_id": handle.id}))
        else:
            print(handle.id)  # alone on stdout: `id=$(toolrunner run ... --no-wait)`
        raise typer.Exit(0)
    queue.announce(handle, tool, tenant)
    result: dict[str, Any] = queue.wait_for(handle, tool)
    return result


def print_result(result: Mapping[str, Any], spec: ToolSpec) -> None:
    """Print the findings as a table of plain text: tool output is never read as Rich markup."""
    findings = result["findings"]
    known = list(spec.finding_fields) or sorted({k for f in findings for k in f})
    # Columns that are empty in every finding only take width from the ones that say something.
    columns = [c for c in known if any(f.get(c) not in (None, "", [], {}) for f in findings)] or known[:1]
    where = f"{result['tool']} for {result['tenant_id']}/{result['run_id']} (task {result.get('task_id')})"
    out.print(plain(f"{where}: {len(findings)} finding(s)"), soft_wrap=True)
    cache = result.get("cache") or {}
    if cache.get("hit"):
        source, age = cache.get("source_task_id"), cache.get("age_seconds")
        out.print(plain(f"cache hit: the result of task {source}, {age}s old"), soft_wrap=True)
    table = Table()
    for column in columns:
        table.add_column(column)
    for finding in findings:
        table.add_row(*(plain(_cell(finding.get(c))) for c in columns))
    out.print(table)
    stats = result["stats"]
    out.print(plain(f"status {result['status']} exit {result['exit_code']} in {stats['duration_ms']} ms"))
    if result.get("reason"):
        out.print(plain(f"reason: {result['reason']}"))
    for notice in result.get("notices", []):
        out.print(plain(f"notice: {notice}"), soft_wrap=True)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)
