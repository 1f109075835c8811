"""The `toolrunner volumes` and `toolrunner sweep` commands: list the engine's managed volumes, remove old ones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

import isolation
from config import load_settings
from tasks.cli.console import out
from tasks.errors import UserError

app = typer.Typer()  # mounted without a name: `volumes` and `sweep` are commands of `toolrunner` itself


@app.command()
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


@app.command()
def sweep(
    max_age_hours: Annotated[float | None, typer.Option(help="default: TOOLRUNNER_SWEEP_MAX_AGE_HOURS")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report without removing")] = False,
) -> None:
    """Remove this project's volumes and containers older than the max age from the local engine."""
    settings = load_settings()
    age = settings.sweep_max_age_hours if max_age_hours is None else max_age_hours
    # The bound the worker's own setting has (even for a dry run: it would list running tools' containers).
    problem = settings.sweep_age_problem(age, "--max-age-hours")
    if problem:
        raise UserError(problem)
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
