"""`toolrunner webhooks`: tenants' completion webhooks, set by operators: endpoints, secrets, the delivery log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

import tasks.webhooks
from config import load_settings
from tasks.audit import Kind
from tasks.cli.audited import policy_change
from tasks.cli.broker import checked_ids, connect
from tasks.cli.console import out, plain
from tasks.errors import UserError
from tasks.webhooks.delivery import Delivering, redeliver

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Signed completion webhooks per tenant, kept in Redis."
)
Tenant = Annotated[str, typer.Option("--tenant", help="the tenant whose runs' events go there")]
ShownTenant = Annotated[str | None, typer.Option("--tenant", help="only this tenant's endpoint")]
Url = Annotated[str, typer.Option("--url", help="the receiver: https://... (http:// only in development)")]
SecretFile = Annotated[Path, typer.Option("--secret-file", help="a file holding the whsec_... signing secret")]


def _secret(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read the secret file {path}: {exc.strerror}") from None


@app.command("set")
def webhooks_set(tenant: Tenant, url: Url, secret_file: SecretFile) -> None:
    """Send a tenant's run events to URL, signed with the secret; replaces any endpoint (and secret) it had."""
    with checked_ids(), policy_change(Kind.POLICY_WEBHOOKS, "webhooks set", tenant, url=url) as change:
        found = tasks.webhooks.set(
            tenant, url, _secret(secret_file), connection=connect(), allow_http=load_settings().webhook_allow_http
        )
        change.update(secret=found.secrets[0].name)  # its fingerprint, never the secret
    out.print(plain(f"{found.tenant}: {found.url} (secret {found.secrets[0].name})"), soft_wrap=True)


@app.command("rotate")
def webhooks_rotate(tenant: Tenant, secret_file: SecretFile) -> None:
    """Sign with a new secret; the replaced one signs beside it for TOOLRUNNER_WEBHOOK_ROTATION_OVERLAP_SECONDS."""
    overlap = load_settings().webhook_rotation_overlap_seconds
    with checked_ids(), policy_change(Kind.POLICY_WEBHOOKS, "webhooks rotate", tenant) as change:
        found = tasks.webhooks.rotate(tenant, _secret(secret_file), connection=connect(), overlap_seconds=overlap)
        change.update(secrets=[s.name for s in found.secrets], overlap_seconds=overlap)
    names = ", ".join(s.name for s in found.secrets)
    out.print(plain(f"{found.tenant}: signing with {names} (the older for {overlap}s)"), soft_wrap=True)


@app.command("unset")
def webhooks_unset(tenant: Tenant) -> None:
    """Stop sending a tenant's events; events still waiting for a retry are dropped."""
    with checked_ids(), policy_change(Kind.POLICY_WEBHOOKS, "webhooks unset", tenant) as change:
        removed = tasks.webhooks.unset(tenant, connection=connect())
        change.update(removed=removed)
    out.print("removed" if removed else "the tenant had no webhook endpoint")


@app.command("show")
def webhooks_show(tenant: ShownTenant = None) -> None:
    """Every endpoint (or one tenant's): URL, secrets by fingerprint (never the secrets), and whether disabled."""
    found = tasks.webhooks.show(tenant, connection=connect())
    if not found:
        out.print("no webhook endpoints" + (f" for {tenant}" if tenant else ""))
        return
    grid = Table("tenant", "url", "secrets", "disabled")
    for item in found:
        names = " ".join(s.name + ("" if s.until is None else f" (until {_when(s.until)})") for s in item.secrets)
        grid.add_row(plain(item.tenant), plain(item.url), names, plain(item.disabled or ""))
    out.print(grid)


@app.command("log")
def webhooks_log(
    tenant: Tenant, limit: Annotated[int, typer.Option("--limit", min=1, help="the newest N attempts")] = 50
) -> None:
    """A tenant's delivery attempts, newest first: time, event, attempt, status, latency, outcome."""
    with checked_ids():
        entries = tasks.webhooks.log(tenant, connection=connect(), limit=limit)
    if not entries:
        out.print(f"no deliveries logged for {tenant}")
        return
    grid = Table("at", "event", "type", "attempt", "status", "ms", "outcome", "error")
    for e in entries:
        row = [_when(e["at"]), e["event"], e["type"], str(e["attempt"]), str(e.get("status") or "-"),
               str(e["latency_ms"]), e["outcome"], e.get("error") or ""]  # fmt: skip
        grid.add_row(*(plain(str(cell)) for cell in row))
    out.print(grid)


@app.command("redeliver")
def webhooks_redeliver(event_id: Annotated[str, typer.Argument(help="the event's id (its webhook-id)")]) -> None:
    """Send an event again (same webhook-id), whatever its end was, with its attempts counted afresh."""
    stored = redeliver(connect(), Delivering.from_settings(load_settings()), event_id)
    if stored is None:
        raise UserError(f"no event {event_id} (unknown, or older than TOOLRUNNER_WEBHOOK_LOG_DAYS)")
    out.print(plain(f"{event_id}: due now ({stored.event.type.value} of task {stored.event.task_id})"), soft_wrap=True)


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")
