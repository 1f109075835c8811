"""The `toolrunner tools` command: the tool catalogue, with each image's version and whether the engine has it."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

import isolation
from config import load_settings
from tasks.cli.console import out
from tasks.tools import load_catalogue, tool_version

app = typer.Typer()  # mounted without a name: `tools` is a command of `toolrunner` itself


@app.command()
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
