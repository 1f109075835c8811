"""The `toolrunner` command: each module of this package exports one Typer app, and they are all mounted here.

The apps mounted without a name add their commands to `toolrunner` itself (`run`, `tools`, `volumes`, `sweep`,
`cancel`); the named ones are groups (`limits`, `scope`, `hosts`, `cache`, `artifacts`). `--help` lists them in
this order.
"""

from __future__ import annotations

import logging
import sys

import typer
from rich.text import Text

import isolation
from tasks.cli import artifacts, cache, cancel, hosts, limits, run, scope, tools, volumes
from tasks.cli.console import err, plain
from tasks.errors import ToolrunnerError

__all__ = ["cli", "main"]

HELP = "The `toolrunner` command: run a tool (in-process or through the queue), list tools and volumes, sweep."

cli = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
cli.add_typer(run.app)
cli.add_typer(tools.app)
cli.add_typer(volumes.app)
cli.add_typer(cancel.app)
cli.add_typer(limits.app, name="limits")
cli.add_typer(scope.app, name="scope")
cli.add_typer(hosts.app, name="hosts")
cli.add_typer(cache.app, name="cache")
cli.add_typer(artifacts.app, name="artifacts")


def main() -> None:
    """Console-script entry point: user errors print one line and exit non-zero, without a traceback.

    Warnings go to stderr, and so do scope and host override events (`scope event=add tenant=... by=user@host`,
    `hosts event=set host=... by=user@host`): every change of either is a structured line wherever it is made.
    """
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("tasks.scope").setLevel(logging.INFO)
    logging.getLogger("tasks.hosts").setLevel(logging.INFO)
    try:
        cli()
    except (ToolrunnerError, isolation.IsolationError) as exc:
        # soft_wrap: the error stays one line however narrow the terminal (a narrow one wraps it itself)
        err.print(Text("error: ", style="bold red") + plain(str(exc)), highlight=False, soft_wrap=True)
        sys.exit(2)
