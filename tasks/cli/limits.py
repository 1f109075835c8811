"""`toolrunner limits`: per-tenant caps on running runs and the intrusive-tools opt-in, kept in Redis and changed
at run time."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from config import load_settings
from tasks.audit import Kind
from tasks.cli.audited import policy_change
from tasks.cli.broker import Tool, checked_ids, connect, known_tool
from tasks.cli.console import out
from tasks.errors import UserError
from tasks.worker.limits import allow_intrusive, set_limit, show_limits, unset_limit

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Per-tenant caps on running runs and intrusive tools, in Redis."
)
Tenant = Annotated[str, typer.Option("--tenant", help="tenant id")]
MaxRunning = Annotated[int | None, typer.Option("--max-running", min=1, help="cap the tenant's (or tool's) runs")]
Intrusive = Annotated[
    bool | None,
    typer.Option(
        "--allow-intrusive/--no-allow-intrusive",
        help="let the tenant run intrusive tools (sqlmap, gobuster, ffuf), or take that back",
        show_default=False,
    ),
]


@app.command("set")
def limits_set(tenant: Tenant, max_running: MaxRunning = None, tool: Tool = None, intrusive: Intrusive = None) -> None:
    """Cap a tenant's (or its tool's) running runs and/or opt it in to (or out of) intrusive tools; the next run on
    every worker uses it."""
    if max_running is None and intrusive is None:
        raise UserError("give --max-running N, --allow-intrusive or --no-allow-intrusive")
    if intrusive is not None and tool is not None:
        raise UserError("--allow-intrusive is for a whole tenant, not with --tool")
    audited = policy_change(
        Kind.POLICY_LIMITS, "limits set", tenant, tool=tool, max_running=max_running, allow_intrusive=intrusive
    )
    with checked_ids(), audited:
        client = connect()
        if max_running is not None:
            set_limit(client, tenant, max_running, known_tool(tool))
            out.print(f"{tenant}{':' + tool if tool else ''} max running = {max_running}")
        if intrusive is not None:
            allow_intrusive(client, tenant, intrusive)
            out.print(f"{tenant} intrusive tools = {'allowed' if intrusive else 'refused'}")


@app.command("unset")
def limits_unset(tenant: Tenant, tool: Tool = None) -> None:
    """Drop a cap override: back to TOOLRUNNER_TENANT_MAX_RUNNING (or no tool cap); `set --no-allow-intrusive`
    takes back an opt-in."""
    with checked_ids(), policy_change(Kind.POLICY_LIMITS, "limits unset", tenant, tool=tool) as change:
        found = unset_limit(connect(), tenant, tool)
        change.update(removed=found)
    out.print("removed" if found else "there was no such override")


@app.command("show")
def limits_show(tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant")] = None) -> None:
    """The default cap, every override and which tenants may run intrusive tools (no: refused, the default)."""
    title = f"default: {load_settings().tenant_max_running}"
    grid = Table("tenant", "tool", "max running", "intrusive tools", title=title)
    for limit in show_limits(connect(), tenant):
        cap = "(default)" if limit.max_running is None else str(limit.max_running)
        intrusive = "" if limit.tool else ("allowed" if limit.allow_intrusive else "refused")
        grid.add_row(limit.tenant_id, limit.tool or "(all)", cap, intrusive)
    out.print(grid)
