"""The `toolrunner` command: each module of this package exports one Typer app, and they are all mounted here.

The apps mounted without a name add their commands to `toolrunner` itself (`run`, `tools`, `volumes`, `sweep`,
`cancel`, `result`); the named ones are groups (`limits`, `scope`, `hosts`, `cache`, `artifacts`, `webhooks`, `audit`).
`--help` lists them in this order.
"""

from __future__ import annotations

import logging
import sys

import kombu.exceptions
import redis.exceptions
import typer

import isolation
from tasks.cli import (
    artifacts,
    audit,
    cache,
    cancel,
    hosts,
    limits,
    result,
    run,
    scope,
    status,
    tools,
    volumes,
    webhooks,
)
from tasks.cli.console import error_line
from tasks.errors import ToolrunnerError

__all__ = ["cli", "main"]

HELP = "The `toolrunner` command: run a tool (in-process or through the queue), list tools and volumes, sweep."

cli = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
cli.add_typer(run.app)
cli.add_typer(tools.app)
cli.add_typer(volumes.app)
cli.add_typer(cancel.app)
cli.add_typer(status.app)
cli.add_typer(result.app)
cli.add_typer(limits.app, name="limits")
cli.add_typer(scope.app, name="scope")
cli.add_typer(hosts.app, name="hosts")
cli.add_typer(cache.app, name="cache")
cli.add_typer(artifacts.app, name="artifacts")
cli.add_typer(webhooks.app, name="webhooks")
cli.add_typer(audit.app, name="audit")


def main() -> None:
    """Console-script entry point: every error a person can cause prints one line and exits non-zero, no traceback.

    Exit status 2 for what the command was given (a usage error, a bad value, an unknown tool or id), 1 for what
    it could not reach (the broker, the engine's errors are 2 as they always were) or a prompt declined; a
    command's own status otherwise (`cancel` pins 0 and 3). Warnings go to stderr, and so do scope and host
    override events (`scope event=add tenant=... by=user@host`, `hosts event=set host=... by=user@host`): every
    change of either is a structured line wherever it is made.
    """
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("tasks.scope").setLevel(logging.INFO)
    logging.getLogger("tasks.hosts").setLevel(logging.INFO)
    logging.getLogger("tasks.webhooks.endpoint").setLevel(logging.INFO)
    sys.exit(_status())


def _status() -> int:
    try:
        status = cli(standalone_mode=False)
    except typer.TyperException as exc:  # usage errors and bad parameters: Typer would draw a box of them
        # A group run without a command printed its help when the error was made (Typer checks it by name too).
        if type(exc).__name__ != "NoArgsIsHelpError":
            error_line(exc.format_message())
        return exc.exit_code
    except typer.Abort:
        error_line("aborted")
        return 1
    except (ToolrunnerError, isolation.IsolationError) as exc:
        error_line(str(exc))
        return 2
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, kombu.exceptions.OperationalError) as exc:
        error_line(f"cannot reach the broker (TOOLRUNNER_BROKER_URL): {exc}")
        return 1
    return status if isinstance(status, int) else 0
