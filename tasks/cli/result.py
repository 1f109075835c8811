"""`toolrunner result TASK_ID --tenant T`: a finished run's result as JSON, from the backend or, once it expired
there, from the artifact store's `result.json`."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from config import load_settings
from tasks.errors import NoBrokerError, UserError

app = typer.Typer()  # mounted without a name: `result` is a command of `toolrunner` itself
NOT_FINISHED = 3  # the exit status for a run with no result (not finished, failed, cancelled, or unknown)
TaskId = Annotated[str, typer.Argument(help="the task id of the run (what `run_tool.delay` returned)")]


@app.command()
def result(
    task_id: TaskId,
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant whose run it is (another's is refused)")],
) -> None:
    """Print a tenant's finished run's result as JSON, without waiting.

    Exit status (pinned): 0 with the result on stdout; 3 when there is no result to print (the state is said on
    stderr: still pending or unknown, failed, cancelled); 2 a usage error or another tenant's run.
    """
    if not load_settings().broker_url:
        raise NoBrokerError("result needs the broker: set TOOLRUNNER_BROKER_URL")
    from tasks.worker.app import app as celery  # the Celery app is only needed here
    from tasks.worker.results import finished_result

    try:
        state, found = finished_result(celery, celery.artifacts, celery.redis, task_id, tenant)
    except OSError as exc:  # the artifact store named by TOOLRUNNER_ARTIFACT_URL cannot be opened here
        raise UserError(f"cannot read the artifact store (TOOLRUNNER_ARTIFACT_URL): {exc}") from None
    if found is None:
        said = "no result: not finished, or unknown" if state == "PENDING" else f"no result: the run ended {state}"
        typer.echo(f"{task_id}: {said}", err=True)
        raise typer.Exit(NOT_FINISHED)
    json.dump(found, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
