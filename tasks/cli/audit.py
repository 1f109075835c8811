"""`toolrunner audit`: verify the audit trail, search it for who scanned an address or name, export it as JSON lines."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from config import load_settings
from tasks.artifacts import ArtifactError, ObjectStore, open_store
from tasks.audit import AuditConfigError, AuditError, AuditEvent, AuditKey, audit_key, export, search, verify
from tasks.audit.verify import DEFAULT_RETENTION_DAYS
from tasks.cli.console import error_line, out, plain
from tasks.errors import UserError
from tasks.service.outputs import artifact_config


@dataclass(frozen=True)
class AuditAccess:
    """What the commands read the audit with: the store, the key, and the retention verify accepts as expiry."""

    store: ObjectStore
    key: AuditKey
    retention_days: int = DEFAULT_RETENTION_DAYS


Opener = Callable[[], AuditAccess]
_RELATIVE = re.compile(r"(\d+)([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def configured() -> tuple[ObjectStore, AuditKey]:
    """The artifact store the settings name (TOOLRUNNER_ARTIFACT_URL) and TOOLRUNNER_AUDIT_KEY."""
    settings = load_settings()
    config = artifact_config(settings)
    return open_store(config.url, config.s3), audit_key(settings)


def configured_access() -> AuditAccess:
    """What `configured` gives, with TOOLRUNNER_AUDIT_RETENTION_DAYS."""
    return AuditAccess(*configured(), retention_days=load_settings().audit_retention_days)


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 date or time (UTC unless it says otherwise), or a time ago: `7d`, `12h`, `30m`."""
    relative = _RELATIVE.fullmatch(text.strip())
    if relative:
        amount, unit = relative.groups()
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        found = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(
            f"{text!r}: write a time as 2026-03-01, 2026-03-01T03:12:00Z or a time ago (7d, 12h, 30m)"
        ) from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


Since = Annotated[str | None, typer.Option("--since", help="from this time: 2026-03-01[T03:00Z] or 7d, 12h ago")]
Until = Annotated[str | None, typer.Option("--until", help="up to this time (same forms as --since)")]


Target = Annotated[str, typer.Option("--target", help="an address (also found inside scanned networks) or name")]
Tenant = Annotated[str | None, typer.Option("--tenant", help="only this tenant's runs")]
AsJson = Annotated[bool, typer.Option("--json", help="one JSON object a line instead of a table")]


def build_app(opener: Opener = configured_access) -> typer.Typer:
    """The `audit` sub-app; `opener` gives the store and the audit key (the settings' unless a test's)."""
    app = typer.Typer(name="audit", add_completion=False, no_args_is_help=True, help=__doc__)

    @app.callback()
    def _options(ctx: typer.Context) -> None:
        ctx.obj = opener

    app.command("verify")(audit_verify)
    app.command("search")(audit_search)
    app.command("export")(audit_export)
    return app


def audit_verify(ctx: typer.Context, since: Since = None) -> None:
    """Check every segment, chain and stream end; exit 1 listing the problems when anything fails."""
    with _reported():
        access = _opened(ctx)
        report = verify(access.store, access.key, _time(since), retention_days=access.retention_days)
    for note in report.notes:
        out.print(plain(f"note: {note}"), soft_wrap=True)
    out.print(f"{report.streams} streams, {report.segments} segments, {report.events} events checked")
    if not report.ok:
        for problem in report.problems:
            error_line(problem)
        raise typer.Exit(1)
    out.print("ok: no problem found")


def audit_search(
    ctx: typer.Context, target: Target, since: Since = None, until: Until = None, tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:  # fmt: skip
    """Every run and change whose targets hold the address or name, or whose names resolved to it."""
    with _reported():
        access = _opened(ctx)
        found = search(access.store, access.key, target, _time(since), _time(until), tenant)
    for problem in found.unreadable:
        error_line(f"skipped, failed authentication (run `toolrunner audit verify`): {problem}")
    if as_json:
        for event in found.events:
            sys.stdout.write(json.dumps(event.as_dict(), sort_keys=True) + "\n")
        return
    for event in found.events:
        for line in _describe(event):
            out.print(plain(line), soft_wrap=True)
    out.print(f"{len(found.events)} events; {found.opened} of {found.segments} segments opened")


def audit_export(ctx: typer.Context, since: Since = None, until: Until = None) -> None:
    """Stream every event as JSON lines, in time order, each once (for a SIEM)."""
    with _reported():
        access = _opened(ctx)
        for line in export(access.store, access.key, _time(since), _time(until)):
            sys.stdout.write(line + "\n")


def _opened(ctx: typer.Context) -> AuditAccess:
    opener: Opener = ctx.obj
    return opener()


def _time(text: str | None) -> datetime | None:
    return parse_time(text) if text is not None else None


def _describe(e: AuditEvent) -> list[str]:
    """An event as a few labelled lines: readable at any terminal width, unlike a ten-column table."""
    targets = ", ".join(e.targets[:20]) + (f" ... ({len(e.targets)} in all)" if len(e.targets) > 20 else "")
    if e.targets_ref:
        targets = f"a list stored as {e.targets_ref} (sha256 {e.targets_digest})"
    fields = {
        "run": f"{e.run_id} task {e.task_id}", "tool": f"{e.tool} image {e.image_id}", "argv": " ".join(e.argv),
        "targets": targets, "resolved": "; ".join(f"{n} -> {', '.join(a)}" for n, a in e.resolved.items()),
        "worker": f"{e.worker} daemon {e.daemon_id} egress {e.egress_address}", "status": f"{e.status} {e.reason}",
        "bytes": f"in {e.bytes_in} out {e.bytes_out}" if e.bytes_in is not None else "",
        "operator": e.operator, "detail": json.dumps(e.detail, sort_keys=True) if e.detail else "",
    }  # fmt: skip
    lines = [f"{e.time:%Y-%m-%d %H:%M:%S} UTC  {e.kind.value}  tenant {e.tenant}  id {e.id}"]
    lines += [f"  {label}: {value.strip()}" for label, value in fields.items() if value.strip(" -")]
    return lines


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """A missing or malformed key is exit 2; an unreadable store or object is exit 1, each one line."""
    try:
        yield
    except AuditConfigError as exc:
        error_line(str(exc))
        raise typer.Exit(2) from exc
    except (AuditError, ArtifactError) as exc:
        error_line(str(exc))
        raise typer.Exit(1) from exc


app = build_app()
