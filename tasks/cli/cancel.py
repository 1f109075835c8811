"""The `toolrunner cancel [TASK_ID] --tenant T [--waiting]` command: cancel a run through the broker, wherever it
is, or every run of a tenant's that waits for a slot."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from config import load_settings
from tasks.errors import NoBrokerError

app = typer.Typer()  # mounted without a name: `cancel` is a command of `toolrunner` itself
out = Console(highlight=False, soft_wrap=True)  # one line, whatever the terminal width
UNKNOWN_ID = 3  # the exit status for an id no run of the tenant has (0 cancelled or finished, 2 a usage error)
TaskId = Annotated[str | None, typer.Argument(help="the task id of the run (what `run_tool.delay` returned)")]


@app.command()
def cancel(
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant whose run it is (another's is left alone)")],
    task_id: TaskId = None,
    waiting: Annotated[
        bool, typer.Option("--waiting", help="cancel every run of the tenant's that waits for a slot (not a TASK_ID)")
    ] = False,
) -> None:
    """Cancel a tenant's run: a queued one never starts, a running one stops within seconds and ends REVOKED.
    With --waiting instead of a TASK_ID: every run of the tenant's that waits for a slot (running ones go on).

    Exit status (pinned): 0 when the run is cancelled (sent, recorded for a queued run, cancelled before) or had
    already finished (the line says so), and after --waiting (the line says how many); 3 when no run of the
    tenant has this id (the cancel is still recorded, bound to the tenant: a run it sends later with this id never
    starts); 2 a usage error (no --tenant, or not exactly one of TASK_ID and --waiting).
    """
    if (task_id is None) == (not waiting):
        raise typer.BadParameter("give exactly one of TASK_ID and --waiting", param_hint="TASK_ID / --waiting")
    if not load_settings().broker_url:
        raise NoBrokerError("cancel needs the broker: set TOOLRUNNER_BROKER_URL")
    from tasks.worker.cancel import Cancelled, cancel_run, cancel_waiting_runs  # the Celery app is only needed here

    if task_id is None:
        count = cancel_waiting_runs(tenant_id=tenant)
        out.print(f"tenant {tenant}: {count} waiting runs cancelled; running runs go on", markup=False)
        return
    outcome = cancel_run(task_id, tenant_id=tenant)
    out.print(outcome.message, markup=False)
    raise typer.Exit(UNKNOWN_ID if outcome.outcome is Cancelled.UNKNOWN else 0)
