"""The audit layer's exception tree: callers catch AuditError and nothing lower."""

from __future__ import annotations

from tasks.errors import ToolrunnerError


class AuditError(ToolrunnerError):
    """Raised for any failure of the audit trail (the root of its branch of the task layer's tree)."""


class AuditConfigError(AuditError, ValueError):
    """Raised when the audit key or a journal's settings are missing or unusable; nothing is recorded without them."""


class AuditIntegrityError(AuditError):
    """Raised when a stored audit object fails authentication: altered, truncated, or moved from its key."""
