"""`toolrunner limits`: per-tenant caps on running runs, kept in Redis and changed at run time."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from config import load_settings
from tasks.cli.broker import Tool, checked_ids, connect, known_tool
from tasks.cli.console import out
from tasks.worker.limits import set_limit, show_limits, unset_limit

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Per-tenant caps on running runs, in Redis.")
Tenant = Annotated[str, typer.Option("--tenant", help="tenant id")]


@app.command("set")
def limits_set(
    tenant: Tenant, max_running: Annotated[int, typer.Option("--max-running", min=1)], tool: Tool = None
) -> None:
    """Cap a tenant's (or its tool's) running runs; the next admission on every worker uses it."""
    with checked_ids():
        set_limit(connect(), tenant, max_running, known_tool(tool))
    out.print(f"{tenant}{':' + tool if tool else ''} max running = {max_running}")


@app.command("unset")
def limits_unset(tenant: Tenant, tool: Tool = None) -> None:
    """Drop an override: back to TOOLRUNNER_TENANT_MAX_RUNNING (or no tool cap)."""
    with checked_ids():
        found = unset_limit(connect(), tenant, tool)
    out.print("removed" if found else "there was no such override")


@app.command("show")
def limits_show(tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant")] = None) -> None:
    """The default cap and every override."""
    grid = Table("tenant", "tool", "max running", title=f"default: {load_settings().tenant_max_running}")
    for limit in show_limits(connect(), tenant):
        grid.add_row(limit.tenant_id, limit.tool or "(all)", str(limit.max_running))
    out.print(grid)
