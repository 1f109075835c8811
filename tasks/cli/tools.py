"""The `toolrunner tools [TOOL]` command: the catalogue (each image's version and presence), or one tool's params."""

from __future__ import annotations

import json
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import typer
from rich.table import Table

import isolation
from config import load_settings
from tasks.cli.console import out, plain
from tasks.errors import UserError
from tasks.tools import ToolSpec, load_catalogue, tool_version

app = typer.Typer()  # mounted without a name: `tools` is a command of `toolrunner` itself


@app.command()
def tools(
    tool: Annotated[str | None, typer.Argument(help="one tool: its params and finding fields")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the catalogue as JSON, one object a tool")] = False,
) -> None:
    """List the tool catalogue (image after overrides, its version, whether the engine has it), or TOOL's params."""
    settings = load_settings()
    catalogue = load_catalogue(settings.extra_tool_modules)
    if tool is not None:
        if tool not in catalogue:
            raise UserError(f"unknown tool {tool!r}; known tools: {', '.join(sorted(catalogue))}")
        _describe(catalogue[tool], as_json)
        return
    client = isolation.connect(None)
    rows: list[dict[str, Any]] = []
    for name, spec in catalogue.items():
        image = settings.image_for(name, spec.image)
        labels = _labels(client, image)
        rows.append(
            {
                "tool": name,
                "image": image,
                "version": tool_version(name, image, labels or {}),
                "present": labels is not None,
                "timeout_seconds": spec.default_timeout,
                "intrusive": spec.intrusive,
                "description": spec.description,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("tool", "image", "version", "present", "timeout", "intrusive", "description")
    for row in rows:
        present, intrusive = ("yes" if row[key] else "no" for key in ("present", "intrusive"))
        timeout = f"{row['timeout_seconds']}s"
        table.add_row(row["tool"], row["image"], row["version"], present, timeout, intrusive, row["description"])
    out.print(table)


def describe(spec: ToolSpec) -> dict[str, Any]:
    """A tool's params (name, type, default, description, from its params model) and its finding fields."""
    params = [
        {
            "name": name,
            "type": type_name(field.annotation),
            "required": field.is_required(),
            "default": None if field.is_required() else field.get_default(call_default_factory=True),
            "description": field.description or "",
        }
        for name, field in spec.params_model.model_fields.items()
    ]
    return {
        "tool": spec.name, "description": spec.description, "timeout_seconds": spec.default_timeout,
        "intrusive": spec.intrusive, "params": params, "finding_fields": dict(spec.finding_fields),
    }  # fmt: skip


def _describe(spec: ToolSpec, as_json: bool) -> None:
    described = describe(spec)
    if as_json:
        print(json.dumps(described, indent=2, default=list))
        return
    intrusive = "; intrusive: only for tenants opted in" if spec.intrusive else ""
    out.print(plain(f"{spec.name}: {spec.description} (default timeout {spec.default_timeout}s{intrusive})"))
    params = Table("param", "type", "default", "description", title="params (-p name=value; a list takes repeats)")
    for param in described["params"]:
        default = "(required)" if param["required"] else _shown(param["default"])
        params.add_row(plain(param["name"]), plain(param["type"]), plain(default), plain(param["description"]))
    out.print(params)
    fields = Table("field", "meaning", title="finding fields")
    for name, meaning in spec.finding_fields.items():
        fields.add_row(plain(name), plain(meaning))
    out.print(fields if spec.finding_fields else "finding fields: not declared (each finding's keys are its own)")


def _shown(default: Any) -> str:
    if default is None:
        return "(none)"
    return json.dumps(list(default) if isinstance(default, tuple) else default)


def type_name(annotation: Any) -> str:
    """A field's type as a person reads it: `int | None`, `list[str]` (a tuple of any length is a list here)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_name(args[0])
    if origin in (Union, UnionType):
        return " | ".join(type_name(arg) for arg in args)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return f"list[{type_name(args[0])}]"
    if origin is not None:
        return f"{getattr(origin, '__name__', origin)}[{', '.join(type_name(arg) for arg in args)}]"
    if annotation is type(None):
        return "None"
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def _labels(client: Any, image: str) -> dict[str, str] | None:
    """The image's labels; None when it is not on the engine (or the engine cannot say)."""
    try:
        return isolation.image_labels(client, image)
    except isolation.IsolationError:  # absent or unreadable: either way not usable here
        return None
