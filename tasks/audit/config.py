"""The audit key from the settings, failing closed: nothing is audited, searched or verified without it.

TOOLRUNNER_AUDIT_KEY wins. Without it, a file:// artifact store (one host: the demo, a developer's machine) keeps a
generated key beside the store directory (`<store dir>.audit-key`, 0600, as the artifact master key); any other
store refuses, saying how to set the key. The generated key sits on the same disk as the segments, so it proves
nothing against someone who can write that disk: production sets TOOLRUNNER_AUDIT_KEY and an s3:// store.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from config import Settings
from tasks.artifacts.keys import load_or_create_key_file
from tasks.audit.key import AuditKey

KEY_FILE_SUFFIX = ".audit-key"


def audit_key(settings: Settings) -> AuditKey:
    """TOOLRUNNER_AUDIT_KEY (or a file store's generated key) as a key; AuditConfigError, saying how to set it, when
    it is missing or malformed."""
    secret = settings.audit_key
    if secret is None and urlsplit(settings.artifact_url).scheme == "file":
        return AuditKey(load_or_create_key_file(key_file_for(settings.artifact_url), "the audit key"))
    return AuditKey.parse(secret.get_secret_value() if secret else None)


def key_file_for(url: str) -> Path:
    """Where a file store's generated audit key lives: beside the store directory, not inside it."""
    root = Path(urlsplit(url).path.rstrip("/"))
    return root.with_name(root.name + KEY_FILE_SUFFIX)
