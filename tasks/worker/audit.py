"""The audit trail in the worker (tasks/audit, docs/audit.md): each process's journal, where its scans leave from,
and the events of a run's transitions.

Each process of a worker writes a stream of its own: a pool child `<node>.<index>` (its place in the pool, which the
child replacing it takes over, so a child killed mid-run has its spool stored by its successor), the main process
`<node>.main` (runs Celery dropped unrun). An event is on the worker's disk (the fsynced spool, under
TOOLRUNNER_AUDIT_SPOOL_DIR) when `record` returns, and reaches the store with its period's segment; a process that
ends on purpose stores everything first (a closed segment). Every event names the worker, its engine's ID and the
address its scans leave from (TOOLRUNNER_EGRESS_ADDRESS, or the source address of this host's route out, read
once at start).

A run is audited before it scans: the steps record `run.accepted` (its targets, argv and what names resolved to)
and `run.started` with `strict=True`, so a worker that cannot write its spool fails the run instead of scanning
unrecorded. Ends are recorded best effort (the scan already happened; its accepted event stands). A worker whose
audit cannot be set up (an s3:// store and no TOOLRUNNER_AUDIT_KEY) refuses to start; one that delivers webhooks
alone keeps no audit (it runs nothing).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from billiard.process import current_process
from celery.signals import celeryd_after_setup, worker_process_init, worker_process_shutdown, worker_shutdown

from config import Settings
from tasks.artifacts import ArtifactError, open_store
from tasks.audit import AuditError, AuditEvent, Journal, Kind, audit_key, sweep_expired
from tasks.service import RunResult
from tasks.service.outputs import artifact_config
from tasks.service.plan import RunPlan
from tasks.worker import diskguard, role
from tasks.worker.app import app
from tasks.worker.context import Run

logger = logging.getLogger(__name__)

_PROBE = ("192.0.2.1", 9)  # TEST-NET-1: connecting a UDP socket picks the route out and sends nothing


@dataclass(frozen=True)
class Origin:
    """Where this worker's scans come from: its node name, its engine's ID and the address they leave from."""

    worker: str = ""
    daemon_id: str = ""
    egress_address: str = ""


_origin = Origin()
_journal: Journal | None = None
_journal_pid = 0


def journal() -> Journal | None:
    """This process's journal (None where none was opened: eager runs, a webhooks worker, the CLI)."""
    return _journal if _journal_pid == os.getpid() else None


def record(kind: Kind, *, strict: bool = False, **fields: Any) -> None:
    """Record an event of this process's worker; `strict`: raise AuditError when it cannot be written (the run
    must not go on unrecorded), else log it."""
    found = journal()
    if found is None:
        if strict and _origin.worker:  # a worker that audits, in a process whose journal did not open
            raise AuditError("this process has no audit journal (it failed to open: see the log): refusing to run")
        return
    event = AuditEvent.new(
        kind, worker=_origin.worker, daemon_id=_origin.daemon_id, egress_address=_origin.egress_address, **fields
    )
    try:
        found.record(event)
    except OSError as exc:
        logger.error("audit event %s task=%s not recorded: %s", kind.value, fields.get("task_id"), exc)
        if strict:
            raise AuditError(f"the audit spool cannot be written ({exc}): refusing to run unrecorded") from exc


def finished(run: Run, status: str, reason: str, result: RunResult | None = None) -> None:
    """A run's end (a cache hit's too): its status, bytes in and out, and the ID of the image the engine ran."""
    d, stats = run.delivery, result.stats if result is not None else None
    image = result.image if result is not None else ""
    cache_hit = bool(result is not None and result.cache is not None and result.cache.hit)
    record(
        Kind.RUN_FINISHED, tenant=d.tenant_id, run_id=d.run_id, task_id=d.task_id, tool=d.tool, status=status,
        reason=reason[:1000], image_id=run.services.images.id_of(image) if image else "",
        bytes_in=stats.bytes_in if stats else None, bytes_out=stats.bytes_out if stats else None,
        detail={"image": image, "cache_hit": cache_hit} if result is not None else {},
    )  # fmt: skip


def targets(plan: RunPlan) -> list[str]:
    """The run's targets as its tool reads them (names, addresses, networks, URLs)."""
    return [text for _, text in plan.spec.targets(plan.params)] if plan.spec.targets else []


def raw_targets(params: object) -> list[str]:
    """A refused request's targets as it sent them (its plan may not exist: bad input)."""
    found = params.get("targets") if isinstance(params, dict) else None
    return [str(t) for t in found[:10_000]] if isinstance(found, list) else []


def egress_address(settings: Settings) -> str:
    """TOOLRUNNER_EGRESS_ADDRESS, or the source address of this host's route out ('' when it has none)."""
    if settings.egress_address:
        return settings.egress_address
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(_PROBE)
            return str(probe.getsockname()[0])
    except OSError:
        return ""


def spool_dir(settings: Settings) -> Path:
    """Where this host's audit spools live: TOOLRUNNER_AUDIT_SPOOL_DIR, else under the temporary directory (the
    compose stack's and the Kubernetes pod's spool volume, through TMPDIR); one directory per store, so a stream's
    spool and chain state never reach another store's trail."""
    base = Path(settings.audit_spool_dir or Path(tempfile.gettempdir()) / "toolrunner-audit")
    return base / hashlib.sha256(settings.artifact_url.encode()).hexdigest()[:16]


def _open(settings: Settings, stream: str) -> Journal:
    config = artifact_config(settings)
    store = open_store(config.url, config.s3)
    found = Journal(store, audit_key(settings), stream, spool_dir(settings), settings.audit_segment_seconds)
    found.start()  # stores what a predecessor of this stream left in the spool
    return found


def _stream(node: str, part: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{node}.{part}")


@app.task(name="toolrunner.sweep_audit")
def sweep_audit() -> int:
    """Delete audit segments (and big runs' target lists) older than TOOLRUNNER_AUDIT_RETENTION_DAYS; how many."""
    settings = app.settings
    config = artifact_config(settings)
    return sweep_expired(open_store(config.url, config.s3), datetime.now(UTC), settings.audit_retention_days)


@celeryd_after_setup.connect
def _start(sender: str | None = None, **_: Any) -> None:
    """In the worker's main process, before the pool forks: where scans leave from, and the main stream. A worker
    whose audit cannot be set up does not start."""
    global _origin, _journal, _journal_pid
    node = str(sender)
    if role.delivers_only(role.consumed(app, node)):
        return
    settings = app.settings
    try:
        _journal = _open(settings, _stream(node, "main"))
    except (AuditError, ArtifactError, OSError) as exc:
        raise SystemExit(f"toolrunner: refusing to start: audit: {exc}") from exc
    _journal_pid = os.getpid()
    _origin = Origin(node, diskguard.daemon_id(), egress_address(settings))
    logger.info("audit: stream %s, egress %s, engine %s", _journal.stream, _origin.egress_address, _origin.daemon_id)


@worker_process_init.connect
def _start_child(sender: str | None = None, **_: Any) -> None:
    """In each pool child: its own stream, named by its place in the pool."""
    global _journal, _journal_pid
    if not _origin.worker:  # the main process kept no audit (a webhooks worker)
        return
    index = getattr(current_process(), "index", os.getpid())
    try:
        _journal = _open(app.settings, _stream(_origin.worker, str(index)))
    except (AuditError, ArtifactError, OSError) as exc:  # its runs fail (strict records) rather than run unrecorded
        logger.error("audit: pool child %s has no journal: %s", index, exc)
        return
    _journal_pid = os.getpid()


@worker_process_shutdown.connect
@worker_shutdown.connect
def _close(**_: Any) -> None:
    """A process ending on purpose stores its spool and ends its stream with a closed segment."""
    found = journal()
    if found is None:
        return
    try:
        found.close()
    except (AuditError, ArtifactError, OSError) as exc:  # kept in the spool: the stream's next start stores it
        logger.error("audit: stream %s not stored at exit: %s", found.stream, exc)


__all__ = [
    "Origin", "egress_address", "finished", "journal", "raw_targets", "record", "spool_dir", "sweep_audit", "targets",
]  # fmt: skip
