"""The `toolrunner artifacts` commands: list a task's artifacts, get one (decrypted, verified), sweep, purge."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.table import Table

from config import load_settings
from tasks.artifacts import ArtifactConfig, ArtifactError, Artifacts, open_artifacts
from tasks.audit import Kind
from tasks.cli.audited import policy_change
from tasks.cli.cache import clear_tenant
from tasks.cli.console import error_line, out
from tasks.errors import UserError
from tasks.service.outputs import artifact_config

ArtifactsFactory = Callable[[], Artifacts]
PurgeHook = Callable[[str], int]


def configured_artifacts() -> Artifacts:
    """The store the settings name (TOOLRUNNER_ARTIFACT_URL and its keys)."""
    return open_artifacts(artifact_config(load_settings()))


def _unconfigured() -> Artifacts:
    raise ArtifactError("no artifact store is configured: pass --url (and --master-key-file for s3://)")


@dataclass(frozen=True)
class _Options:
    factory: ArtifactsFactory
    on_purge: PurgeHook | None


def build_app(factory: ArtifactsFactory = _unconfigured, on_purge: PurgeHook | None = None) -> typer.Typer:
    """The `artifacts` sub-app; `factory` builds the store from the settings unless --url overrides it.

    `on_purge(tenant)` runs after a tenant's artifacts are purged (the CLI clears that tenant's cached
    results with it) and returns how many it removed.
    """
    app = typer.Typer(name="artifacts", add_completion=False, no_args_is_help=True, help=__doc__)

    @app.callback()
    def _options(
        ctx: typer.Context,
        url: Annotated[str | None, typer.Option(help="store URL (file:///path or s3://bucket/prefix)")] = None,
        master_key_file: Annotated[Path | None, typer.Option(help="file holding the base64 master key")] = None,
    ) -> None:
        ctx.obj = _Options(factory if url is None else _from_options(url, master_key_file), on_purge)

    app.command("list")(list_artifacts)
    app.command("get")(get)
    app.command("sweep")(sweep)
    app.command("purge")(purge)
    return app


def _from_options(url: str, master_key_file: Path | None) -> ArtifactsFactory:
    # The key comes from a file, never the command line, where `ps` would show it.
    try:
        key = master_key_file.read_text().strip() if master_key_file else None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--master-key-file {master_key_file}: cannot read it: {exc}") from None
    return lambda: open_artifacts(ArtifactConfig(url=url, master_key=key))


def _artifacts(ctx: typer.Context) -> Artifacts:
    options: _Options = ctx.obj
    return options.factory()


Tenant = Annotated[str, typer.Option("--tenant", help="the tenant whose run it is (another tenant's is not found)")]


def list_artifacts(
    ctx: typer.Context, task_id: Annotated[str, typer.Argument(help="the Celery task id of the run")], tenant: Tenant
) -> None:
    """List the artifacts a tenant's task stored."""
    with _reported():
        index = _artifacts(ctx).index(task_id, tenant=tenant)
    table = Table(title=f"task {task_id}: tenant {index.location.tenant}, run {index.location.run}")
    for column in ("name", "size", "sha256", "uri"):
        table.add_column(column, overflow="fold")
    for record in index.artifacts:
        table.add_row(record.name, str(record.size), record.sha256, record.uri)
    out.print(table)
    out.print(f"expires {index.expires.isoformat()}")


def get(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(help="the Celery task id of the run")],
    name: Annotated[str, typer.Argument(help="the artifact's name, see `artifacts list`")],
    tenant: Tenant,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="file to write (default: stdout)")] = None,
) -> None:
    """Decrypt a tenant's artifact, verify its sha256 and stream it to a file or stdout."""
    if output is not None:
        _check_writable(output)  # before the store is asked: a bad path costs no download
    with _reported(), _artifacts(ctx).open_artifact(task_id, name, tenant=tenant) as source:
        if output is None:
            shutil.copyfileobj(source, sys.stdout.buffer, 1 << 20)
        else:
            _write_verified(source, output)


def sweep(ctx: typer.Context) -> None:
    """Delete every task whose retention has passed."""
    with _reported():
        report = _artifacts(ctx).sweep_expired()
    out.print(f"removed {report.tasks} tasks, {report.objects} objects")


def purge(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant whose artifacts go")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Delete every artifact and index entry of one tenant."""
    if not yes:
        typer.confirm(f"delete every artifact of tenant {tenant!r}?", abort=True)
    with _reported(), policy_change(Kind.POLICY_ARTIFACT_PURGE, "artifacts purge", tenant) as change:
        report = _artifacts(ctx).purge_tenant(tenant)
        change.update(tasks=report.tasks, objects=report.objects)
    out.print(f"removed {report.tasks} tasks, {report.objects} objects of tenant {tenant}")
    options: _Options = ctx.obj
    if options.on_purge is not None:
        out.print(f"cleared {options.on_purge(tenant)} cached result(s) of tenant {tenant}")


def _check_writable(output: Path) -> None:
    """-o names a file to write in a directory that exists: a user error otherwise, before anything is written."""
    if output.is_dir():
        raise UserError(f"-o {output}: is a directory; name the file to write (e.g. {output / 'ARTIFACT'})")
    if not output.parent.is_dir():
        raise UserError(f"-o {output}: no such directory: {output.parent}")


def _write_verified(source: BinaryIO, output: Path) -> None:
    """Write under a temp name and rename only after the whole artifact verified: no partial file is left."""
    temp = output.with_name(f".{output.name}.part-{os.getpid()}")
    try:
        # 0600 like the store's own files: a decrypted artifact is readable by its owner only.
        with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        temp.replace(output)
    except OSError as exc:  # a path that changed since the check, a full disk, no permission: one line
        raise UserError(f"-o {output}: cannot write: {exc.strerror or exc}") from None
    finally:
        temp.unlink(missing_ok=True)


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """Artifact errors become one red line and exit code 1 (2 for a missing artifact)."""
    try:
        yield
    except LookupError as exc:
        error_line(str(exc))
        raise typer.Exit(2) from exc
    except (ArtifactError, ValueError) as exc:
        error_line(str(exc))
        raise typer.Exit(1) from exc


# A purge clears the tenant's cached results too: they point at the artifacts it removed.
app = build_app(configured_artifacts, on_purge=clear_tenant)
