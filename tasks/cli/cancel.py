"""The `toolrunner cancel TASK_ID` command: cancel a run through the broker, wherever it is."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from config import load_settings
from tasks.errors import NoBrokerError

app = typer.Typer()  # mounted without a name: `cancel` is a command of `toolrunner` itself
out = Console(highlight=False, soft_wrap=True)  # one line, whatever the terminal width
TaskId = Annotated[str, typer.Argument(help="the task id of the run (what `run_tool.delay` returned)")]


@app.command()
def cancel(
    task_id: TaskId,
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant whose run it is (another's is left alone)")],
) -> None:
    """Cancel a tenant's run: a queued one never starts, a running one stops within seconds and ends REVOKED.

    Exit code 0 when the cancel took effect (sent, or recorded for a queued or unknown id), 1 when there was
    nothing to do (already cancelled, or finished).
    """
    if not load_settings().broker_url:
        raise NoBrokerError("cancel needs the broker: set TOOLRUNNER_BROKER_URL")
    from tasks.worker.cancel import Cancelled, cancel_run  # the Celery app is only needed here

    outcome = cancel_run(task_id, tenant_id=tenant)
    out.print(outcome.message, markup=False)
    if outcome.outcome in (Cancelled.ALREADY, Cancelled.FINISHED):
        raise typer.Exit(1)
