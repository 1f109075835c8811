"""The artifact store in the worker: checked before the worker takes any task, and its retention sweep."""

from __future__ import annotations

import logging
from typing import Any, BinaryIO

from celery.signals import celeryd_after_setup

from tasks.artifacts import ArtifactError
from tasks.worker import role
from tasks.worker.app import app

logger = logging.getLogger(__name__)


@celeryd_after_setup.connect
def _open_at_start(sender: str | None = None, **_: Any) -> None:
    """Fail closed: a worker whose store or keys are unusable (s3:// without a master key) does not start. A worker
    that delivers webhooks alone never opens the store (it holds neither it nor its keys)."""
    if role.delivers_only(role.consumed(app, str(sender))):
        return
    try:
        store = app.artifacts
    except ArtifactError as exc:
        # SystemExit, not an exception: Celery logs and swallows exceptions raised by signal receivers.
        raise SystemExit(f"toolrunner: refusing to start: {exc}") from exc
    logger.info("artifact store %r ready (worker %s)", store, sender)


def open_artifact(uri_or_task_id: str, name: str | None = None, *, tenant_id: str) -> BinaryIO:
    """A stream of one of a tenant's artifacts, in plaintext: by its URI, or by task id and name; verified at its end.

    The API tier's way to hand out raw outputs: the store holds only ciphertext, so there are no
    presigned URLs. Raises ArtifactNotFoundError (for another tenant's artifact too, with the same message as
    for a missing one), or ArtifactIntegrityError for a tampered artifact.
    """
    return app.artifacts.open_artifact(uri_or_task_id, name, tenant=tenant_id)


@app.task(name="toolrunner.sweep_artifacts")
def sweep_artifacts() -> dict[str, Any]:
    """Delete artifacts (and their index entries) past TOOLRUNNER_ARTIFACT_RETENTION_DAYS."""
    report = app.artifacts.sweep_expired()
    logger.info("artifact retention sweep: %s", report)
    return {"tasks": report.tasks, "objects": report.objects}
