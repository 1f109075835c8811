"""Policy changes in the audit trail: every command that changes what tenants may do records who changed what.

The audit is opened before the change (no key, or no store: the command refuses and says how to fix it, changing
nothing), the change is made, then its event is stored at once in the `operator` stream (`record_now`): the
operator's user and host, the tenant, the command and what it changed. A change made whose event could not be
stored says so and exits non-zero. The store is TOOLRUNNER_ARTIFACT_URL's, so an operator's machine must name the
shared store (s3://) and hold TOOLRUNNER_AUDIT_KEY, as the workers do.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tasks.artifacts import ArtifactError
from tasks.audit import AuditError, AuditEvent, Kind, record_now
from tasks.cli.audit import configured
from tasks.errors import UserError

STREAM = "operator"


def operator() -> str:
    """Who runs this command: the user (the one behind sudo, when it is sudo) at this host."""
    user = os.environ.get("SUDO_USER") or getpass.getuser()
    return f"{user}@{socket.gethostname()}"


@contextmanager
def policy_change(kind: Kind, command: str, tenant: str = "", **detail: Any) -> Iterator[dict[str, Any]]:
    """Around one change: refuse before it when the audit is not set up, record it after; the block may add to the
    yielded detail what the change found (how many entries it removed...)."""
    try:
        store, key = configured()
    except (AuditError, ArtifactError) as exc:
        raise UserError(f"not changed: the audit trail is not set up ({exc})") from None
    found = {"command": command, **detail}
    yield found
    event = AuditEvent.new(kind, tenant=tenant, operator=operator(), detail=found)
    try:
        record_now(store, key, STREAM, [event])
    except (AuditError, ArtifactError, OSError) as exc:
        raise UserError(f"changed, but the audit trail did not store it ({exc}): record it by hand") from None


__all__ = ["STREAM", "operator", "policy_change"]
