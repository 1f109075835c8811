"""The `toolrunner cancel TASK_ID` command: cancel a run through the broker, wherever it is."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from config import load_settings
from tasks.errors import NoBrokerError

app = typer.Typer()  # mounted without a name: `cancel` is a command of `toolrunner` itself
out = Console(highlight=False, soft_wrap=True)  # one line, whatever the terminal width
UNKNOWN_ID = 3  # the exit status for an id no run of the tenant has (0 cancelled or finished, 2 a usage error)
TaskId = Annotated[str, typer.Argument(help="the task id of the run (what `run_tool.delay` returned)")]


@app.command()
def cancel(
    task_id: TaskId,
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant whose run it is (another's is left alone)")],
) -> None:
    """Cancel a tenant's run: a queued one never starts, a running one stops within seconds and ends REVOKED.

    Exit status (pinned): 0 when the run is cancelled (sent, recorded for a queued run, cancelled before) or had
    already finished (the line says so); 3 when no run of the tenant has this id (the cancel is still recorded,
    bound to the tenant: a run it sends later with this id never starts); 2 a usage error.
    """
    if not load_settings().broker_url:
        raise NoBrokerError("cancel needs the broker: set TOOLRUNNER_BROKER_URL")
    from tasks.worker.cancel import Cancelled, cancel_run  # the Celery app is only needed here

    outcome = cancel_run(task_id, tenant_id=tenant)
    out.print(outcome.message, markup=False)
    raise typer.Exit(UNKNOWN_ID if outcome.outcome is Cancelled.UNKNOWN else 0)
