"""`toolrunner scope`: which targets each tenant may scan, kept in Redis and used by the next admission."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

import tasks.scope
from tasks.audit import Kind
from tasks.cli.audited import policy_change
from tasks.cli.broker import checked_ids, connect
from tasks.cli.console import out

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Which targets each tenant may scan, in Redis.")
Tenant = Annotated[str, typer.Option("--tenant", help="tenant id")]
Entries = Annotated[
    list[str], typer.Argument(metavar="ENTRY...", help="addresses, CIDR networks, domains (with subdomains) or =name")
]
Exclude = Annotated[bool, typer.Option("--exclude", help="exclusions inside the scope, not entries of it")]


@app.command("add")
def scope_add(
    tenant: Tenant, entries: Entries, exclude: Exclude = False,
    expires_in: Annotated[float | None, typer.Option("--expires-in", min=0.001, help="days until they expire")] = None,
) -> None:  # fmt: skip
    """Add entries (or --exclude exclusions) to a tenant's scope; the next admission on every worker uses them."""
    with checked_ids(), policy_change(Kind.POLICY_SCOPE, "scope add", tenant, exclude=exclude) as change:
        added = tasks.scope.add(tenant, entries, exclude=exclude, expires_in_days=expires_in, connection=connect())
        change.update(entries=added, expires_in_days=expires_in)
    what = "excluded" if exclude else "added"
    out.print(f"{tenant}: {what} {', '.join(added)}" + (f" for {expires_in:g} days" if expires_in else ""))


@app.command("remove")
def scope_remove(tenant: Tenant, entries: Entries, exclude: Exclude = False) -> None:
    """Remove entries (or --exclude exclusions) from a tenant's scope."""
    with checked_ids(), policy_change(Kind.POLICY_SCOPE, "scope remove", tenant, exclude=exclude) as change:
        removed = tasks.scope.remove(tenant, entries, exclude=exclude, connection=connect())
        change.update(entries=entries, removed=removed)
    out.print(f"{tenant}: removed {removed} of {len(entries)}")


@app.command("show")
def scope_show(tenant: Tenant) -> None:
    """A tenant's entries and exclusions, with their expiry."""
    with checked_ids():
        lines = tasks.scope.show(tenant, connection=connect())
    grid = Table("entry", "kind", "expires", title=f"scope of {tenant}")
    for line in lines:
        expires = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(line.expires_at)) if line.expires_at else "never"
        grid.add_row(line.entry, "exclude" if line.exclude else "include", expires)
    out.print(grid if lines else f"{tenant} has no scope: while TOOLRUNNER_SCOPE=enforce it may scan nothing")


@app.command("clear")
def scope_clear(tenant: Tenant) -> None:
    """Drop a tenant's whole scope: while scope is enforced it may then scan nothing."""
    with checked_ids(), policy_change(Kind.POLICY_SCOPE, "scope clear", tenant) as change:
        had = tasks.scope.clear(tenant, connection=connect())
        change.update(removed=had)
    out.print(f"{tenant}: cleared {had} entries")
