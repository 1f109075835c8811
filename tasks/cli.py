"""The `toolrunner` command: run a tool (in-process or through the queue), list tools and volumes, sweep."""

from __future__ import annotations

import json
import sys
import time
import unicodedata
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

import isolation
from config import Settings, load_settings
from tasks import cli_share
from tasks.artifacts import Artifacts, open_artifacts
from tasks.cli_artifacts import build_app
from tasks.cli_runctl import register as register_runctl
from tasks.errors import ToolrunnerError, UserError
from tasks.service import RunContext, RunPlan, RunRequest, Stage, Status, execute, plan_run
from tasks.service.outputs import artifact_config
from tasks.tools import ToolSpec, load_catalogue, tool_version

cli = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
cli.add_typer(cli_share.limits, name="limits")
cli.add_typer(cli_share.results, name="cache")
out = Console()
err = Console(stderr=True)


@cli.command()
def run(
    tool: Annotated[str, typer.Argument(help="tool name, see `toolrunner tools`")],
    tenant: Annotated[str, typer.Option("--tenant", help="tenant id")],
    run_id: Annotated[str | None, typer.Option("--run", help="run id (default: cli-<time>)")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="k=v; repeat a key for a list")] = None,
    file: Annotated[list[str] | None, typer.Option("--file", "-f", help="name=path of an extra input file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the whole result as JSON")] = False,
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
    result = _through_queue(tool, tenant, run_id, params, files) if settings.broker_url else _in_process(settings, plan)
    if as_json:
        out.print_json(json.dumps(result))
    else:
        _print_result(result, spec)
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


def _in_process(settings: Settings, plan: RunPlan) -> dict[str, Any]:
    tool = plan.spec.name
    with err.status(f"{tool}: starting") as status:
        started = time.monotonic()

        def report(stage: Stage, meta: Mapping[str, Any]) -> None:
            status.update(_stage_line(tool, stage, meta, time.monotonic() - started))

        ctx = RunContext(
            isolation.connect(None), settings, f"cli-{uuid.uuid4()}", report, "cli", artifacts=_artifacts()
        )
        return execute(plan, ctx).as_dict()


def _through_queue(
    tool: str, tenant: str, run_id: str, params: dict[str, Any], files: dict[str, str]
) -> dict[str, Any]:
    from tasks.worker import run_tool  # the Celery app is only needed here

    handle = run_tool.delay(tool, tenant, run_id, params, files or None)
    started = time.monotonic()
    with err.status(f"{tool}: queued ({handle.id})") as status:
        while not handle.ready():
            info = handle.info if isinstance(handle.info, dict) else {}
            status.update(
                _stage_line(tool, str(info.get("stage", handle.state.lower())), info, time.monotonic() - started)
            )
            time.sleep(0.25)
    result: dict[str, Any] = handle.get(propagate=True)
    return result


def _stage_line(tool: str, stage: str, meta: Mapping[str, Any], elapsed: float) -> str:
    extra = f", {meta['output_lines']} output lines" if "output_lines" in meta else ""
    return f"{tool}: {stage} ({elapsed:.1f}s{extra})"


def _print_result(result: Mapping[str, Any], spec: ToolSpec) -> None:
    """Print the findings as a table of plain text: tool output is never read as Rich markup."""
    findings = result["findings"]
    known = list(spec.finding_fields) or sorted({k for f in findings for k in f})
    # Columns that are empty in every finding only take width from the ones that say something.
    columns = [c for c in known if any(f.get(c) not in (None, "", [], {}) for f in findings)] or known[:1]
    out.print(_plain(f"{result['tool']} for {result['tenant_id']}/{result['run_id']}: {len(findings)} finding(s)"))
    table = Table()
    for column in columns:
        table.add_column(column)
    for finding in findings:
        table.add_row(*(_plain(_cell(finding.get(c))) for c in columns))
    out.print(table)
    stats = result["stats"]
    out.print(_plain(f"status {result['status']} exit {result['exit_code']} in {stats['duration_ms']} ms"))
    if result.get("reason"):
        out.print(_plain(f"reason: {result['reason']}"))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _plain(text: str) -> Text:
    """Text a terminal shows as it is: no markup, and control or formatting characters made visible."""
    return Text(visible(text))


def visible(text: str) -> str:
    """Replace control, format and separator characters (ESC, bidi overrides, U+2028...) with escapes."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} else ch
        for ch in text
    )


@cli.command()
def tools(
    as_json: Annotated[bool, typer.Option("--json", help="print the catalogue as JSON, one object a tool")] = False,
) -> None:
    """List the tool catalogue: image (after overrides), the tool's version in it, whether it is on the engine."""
    settings = load_settings()
    client = isolation.connect(None)
    rows: list[dict[str, Any]] = []
    for name, spec in load_catalogue(settings.extra_tool_modules).items():
        image = settings.image_for(name, spec.image)
        labels = _labels(client, image)
        rows.append(
            {
                "tool": name,
                "image": image,
                "version": tool_version(name, image, labels or {}),
                "present": labels is not None,
                "timeout_seconds": spec.default_timeout,
                "description": spec.description,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("tool", "image", "version", "present", "timeout", "description")
    for row in rows:
        present = "yes" if row["present"] else "no"
        table.add_row(
            row["tool"], row["image"], row["version"], present, f"{row['timeout_seconds']}s", row["description"]
        )
    out.print(table)


def _labels(client: Any, image: str) -> dict[str, str] | None:
    """The image's labels; None when it is not on the engine (or the engine cannot say)."""
    try:
        return isolation.image_labels(client, image)
    except isolation.IsolationError:  # absent or unreadable: either way not usable here
        return None


@cli.command()
def volumes(tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant's volumes")] = None) -> None:
    """List managed volumes with tenant, run, age and whether a container uses them."""
    settings = load_settings()
    table = Table("volume", "tenant", "run", "age", "in use")
    now = datetime.now(UTC)
    listed = isolation.list_managed_volumes(isolation.connect(None), label_prefix=settings.label_prefix, tenant=tenant)
    for volume in listed:
        age = f"{(now - volume.created).total_seconds() / 3600:.1f}h" if volume.created else "?"
        table.add_row(volume.name, volume.tenant, volume.run, age, "yes" if volume.in_use else "no")
    out.print(table)


@cli.command()
def sweep(
    max_age_hours: Annotated[float | None, typer.Option(help="default: TOOLRUNNER_SWEEP_MAX_AGE_HOURS")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report without removing")] = False,
) -> None:
    """Remove this project's volumes and containers older than the max age from the local engine."""
    settings = load_settings()
    age = settings.sweep_max_age_hours if max_age_hours is None else max_age_hours
    report = isolation.cleanup_orphaned_volumes(
        age, isolation.connect(None), label_prefix=settings.label_prefix, dry_run=dry_run
    )
    verb = "would remove" if dry_run else "removed"
    out.print(f"{verb} {len(report.removed)} volume(s), {len(report.removed_containers)} container(s); "
              f"kept in use {len(report.kept_in_use)}; failed {len(report.failed)}")  # fmt: skip
    for name in report.removed:
        out.print(f"  {verb}: {name}")
    for name, reason in report.failed:
        out.print(f"  failed: {name}: {reason}")


def _artifacts() -> Artifacts:
    return open_artifacts(artifact_config(load_settings()))


def _clear_tenant_cache(tenant: str) -> int:
    """A tenant whose artifacts are purged loses its cached results too (they point at those artifacts)."""
    import redis

    from tasks.worker import cache  # the Celery layer is only needed here

    with redis.Redis.from_url(load_settings().broker) as conn:
        return cache.clear(conn, tenant)


cli.add_typer(build_app(_artifacts, on_purge=_clear_tenant_cache), name="artifacts")
register_runctl(cli)


def main() -> None:
    """Console-script entry point: user errors print one line and exit non-zero, without a traceback."""
    try:
        cli()
    except (ToolrunnerError, isolation.IsolationError) as exc:
        err.print(Text("error: ", style="bold red") + _plain(str(exc)), highlight=False)
        sys.exit(2)
