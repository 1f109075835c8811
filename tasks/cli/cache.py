"""`toolrunner cache`: clear cached results in Redis (entries also expire on their own)."""

from __future__ import annotations

from typing import Annotated

import typer

from tasks.audit import Kind
from tasks.cli.audited import policy_change
from tasks.cli.broker import Tool, checked_ids, connect
from tasks.cli.console import out
from tasks.worker import cache

app = typer.Typer(add_completion=False, no_args_is_help=True, help="The result cache in Redis.")


@app.command("clear")
def cache_clear(
    tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant")] = None, tool: Tool = None
) -> None:
    """Delete cached results (entries also expire on their own)."""
    with checked_ids(), policy_change(Kind.POLICY_CACHE_CLEAR, "cache clear", tenant or "", tool=tool) as change:
        removed = cache.clear(connect(), tenant, tool)
        change.update(removed=removed)
    out.print(f"removed {removed} cached result(s)")


def clear_tenant(tenant: str) -> int:
    """A tenant whose artifacts are purged loses its cached results too (they point at those artifacts)."""
    with connect() as conn:
        return cache.clear(conn, tenant)
