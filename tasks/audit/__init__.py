"""The audit trail: run transitions and policy changes in encrypted, hash-chained segments in the artifact store.

A worker records through a `Journal` (an fsynced spool, segments on a fixed cadence); the CLI stores its policy
changes at once with `record_now`; `verify`, `search` and `export` read them back with the audit key.
"""

from tasks.audit.config import audit_key
from tasks.audit.errors import AuditConfigError, AuditError, AuditIntegrityError
from tasks.audit.event import AuditEvent, Kind
from tasks.audit.journal import Journal, record_now
from tasks.audit.key import AuditKey, new_audit_key
from tasks.audit.retention import sweep_expired
from tasks.audit.search import Found, export, search
from tasks.audit.verify import Report, verify

__all__ = [
    "AuditConfigError",
    "AuditError",
    "AuditEvent",
    "AuditIntegrityError",
    "AuditKey",
    "Found",
    "Journal",
    "Kind",
    "Report",
    "audit_key",
    "export",
    "new_audit_key",
    "record_now",
    "search",
    "sweep_expired",
    "verify",
]
