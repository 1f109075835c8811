"""`toolrunner hosts`: per-host overrides of the politeness limits, kept in Redis and used by the next admission."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

import tasks.hosts
from config import load_settings
from tasks.audit import Kind
from tasks.cli.audited import policy_change
from tasks.cli.broker import connect
from tasks.cli.console import out
from tasks.hosts import Limits

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Per-host caps on runs at once and requests per second, in Redis."
)
Host = Annotated[str, typer.Option("--host", help="an IP address or CIDR network")]
ShownHost = Annotated[str | None, typer.Option("--host", help="only the overrides that apply to it")]
# No min= on the limits: tasks.hosts checks them and the command prints its one-line refusal (exit 2).
MaxRunning = Annotated[int | None, typer.Option("--max-running", help="the most runs touching it at once")]
MaxRps = Annotated[float | None, typer.Option("--max-rps", help="requests per second it may receive")]


@app.command("set")
def hosts_set(host: Host, max_running: MaxRunning = None, max_rps: MaxRps = None) -> None:
    """Override a host's (or a network's) limits, replacing any earlier override of it; the next admission uses it."""
    with policy_change(Kind.POLICY_HOSTS, "hosts set", host=host, max_running=max_running, max_rps=max_rps) as change:
        network = tasks.hosts.set(host, max_running=max_running, max_rps=max_rps, connection=connect())
        change.update(network=str(network))
    line = f"{network}: max running {_value(max_running)}, max rps {_value(max_rps)}"
    out.print(line, highlight=False, soft_wrap=True)


@app.command("unset")
def hosts_unset(host: Host) -> None:
    """Drop the override of exactly this host or network: back to the defaults (or a wider override)."""
    with policy_change(Kind.POLICY_HOSTS, "hosts unset", host=host) as change:
        removed = tasks.hosts.unset(host, connection=connect())
        change.update(removed=removed)
    out.print("removed" if removed else "there was no such override")


@app.command("show")
def hosts_show(host: ShownHost = None) -> None:
    """Every override (or those that apply to --host, and the limits it gets), with the defaults."""
    settings, connection = load_settings(), connect()
    found = tasks.hosts.show(host, connection=connection, settings=settings)
    title = f"defaults: max running {settings.host_max_running}, max rps {settings.host_max_rps:g}"
    if settings.politeness == "off":
        title += " (TOOLRUNNER_POLITENESS=off: none enforced)"
    if found:
        grid = Table("host", "max running", "max rps", title=title)
        for override in found:
            grid.add_row(override.host, _value(override.max_running), _value(override.max_rps))
        out.print(grid)
    else:
        out.print(f"no host overrides{' apply' if host else ''}; {title}", highlight=False, soft_wrap=True)
    if host is not None:
        limits = tasks.hosts.limits(host, connection=connection, settings=settings)
        out.print(_effective(host, limits), highlight=False, soft_wrap=True)


def _effective(host: str, limits: Limits) -> str:
    running = f"{limits.max_running} ({limits.max_running_from or 'default'})"
    rps = f"{limits.max_rps:g} ({limits.max_rps_from or 'default'})"
    return f"effective for {tasks.hosts.canonical(tasks.hosts.read(host))}: max running {running}, max rps {rps}"


def _value(limit: float | None) -> str:
    return "default" if limit is None else f"{limit:g}"
