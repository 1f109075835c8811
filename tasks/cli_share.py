"""`toolrunner limits` (per-tenant caps, changed at run time) and `toolrunner cache` (clear cached results)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import redis
import typer
from rich.console import Console
from rich.table import Table

import isolation
from config import load_settings
from tasks.worker import cache
from tasks.worker.limits import set_limit, show_limits, unset_limit

limits = typer.Typer(add_completion=False, no_args_is_help=True, help="Per-tenant caps on running runs, in Redis.")
results = typer.Typer(add_completion=False, no_args_is_help=True, help="The result cache in Redis.")
out = Console()
Tenant = Annotated[str, typer.Option("--tenant", help="tenant id")]
Tool = Annotated[str | None, typer.Option("--tool", help="a tool: cap that tool's runs of the tenant")]


@contextlib.contextmanager
def _checked_ids() -> Iterator[None]:
    """A tenant id or tool name that no run could have is a usage error (exit 2), never a key pattern."""
    try:
        yield
    except isolation.InvalidIdentifierError as exc:
        raise typer.BadParameter(str(exc)) from None


def _redis() -> redis.Redis:
    return redis.Redis.from_url(load_settings().broker)


@limits.command("set")
def limits_set(
    tenant: Tenant, max_running: Annotated[int, typer.Option("--max-running", min=1)], tool: Tool = None
) -> None:
    """Cap a tenant's (or its tool's) running runs; the next admission on every worker uses it."""
    with _checked_ids():
        set_limit(_redis(), tenant, max_running, tool)
    out.print(f"{tenant}{':' + tool if tool else ''} max running = {max_running}")


@limits.command("unset")
def limits_unset(tenant: Tenant, tool: Tool = None) -> None:
    """Drop an override: back to TOOLRUNNER_TENANT_MAX_RUNNING (or no tool cap)."""
    with _checked_ids():
        found = unset_limit(_redis(), tenant, tool)
    out.print("removed" if found else "there was no such override")


@limits.command("show")
def limits_show(tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant")] = None) -> None:
    """The default cap and every override."""
    grid = Table("tenant", "tool", "max running", title=f"default: {load_settings().tenant_max_running}")
    for limit in show_limits(_redis(), tenant):
        grid.add_row(limit.tenant_id, limit.tool or "(all)", str(limit.max_running))
    out.print(grid)


@results.command("clear")
def cache_clear(
    tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant")] = None, tool: Tool = None
) -> None:
    """Delete cached results (entries also expire on their own)."""
    with _checked_ids():
        removed = cache.clear(_redis(), tenant, tool)
    out.print(f"removed {removed} cached result(s)")
