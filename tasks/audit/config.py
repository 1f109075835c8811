"""The audit key from the settings, failing closed: nothing is audited, searched or verified without it."""

from __future__ import annotations

from config import Settings
from tasks.audit.key import AuditKey


def audit_key(settings: Settings) -> AuditKey:
    """TOOLRUNNER_AUDIT_KEY as a key; AuditConfigError, saying how to set it, when it is missing or malformed."""
    secret = settings.audit_key
    return AuditKey.parse(secret.get_secret_value() if secret else None)
