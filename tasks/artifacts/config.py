"""Building the artifact layer from plain values at worker start, failing closed when keys are missing."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tasks.artifacts.crypto import SEGMENT_SIZE
from tasks.artifacts.errors import ArtifactConfigError
from tasks.artifacts.keys import KeyProvider, MasterKeyProvider, load_or_create_key_file, parse_master_key
from tasks.artifacts.service import DEFAULT_RETENTION_DAYS, Artifacts
from tasks.artifacts.store import S3Options, open_store
from tasks.artifacts.writer import DEFAULT_MAX_ARTIFACT_BYTES, ArtifactLimits

logger = logging.getLogger(__name__)

KEY_FILE_SUFFIX = ".master-key"


@dataclass(frozen=True)
class ArtifactConfig:
    """Everything the artifact layer needs; the settings layer maps TOOLRUNNER_ARTIFACT_* onto it."""

    url: str
    master_key: str | None = field(default=None, repr=False)
    retention_days: int = DEFAULT_RETENTION_DAYS
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES
    s3: S3Options = field(default_factory=S3Options)
    segment_size: int = SEGMENT_SIZE


def open_artifacts(config: ArtifactConfig, key_provider: KeyProvider | None = None) -> Artifacts:
    """The artifact layer for a worker or the CLI; raises ArtifactConfigError rather than run without keys.

    Key material, first match wins: `key_provider` (a KMS hook), `config.master_key` (base64), and for a
    file:// store only, a key file beside the store (`<store dir>.master-key`, created 0600 on first use).
    """
    store = open_store(config.url, config.s3)
    keys = key_provider or _master_key_provider(config)
    limits = ArtifactLimits(config.max_artifact_bytes, config.segment_size)
    return Artifacts(store, keys, retention_days=config.retention_days, limits=limits)


def key_file_for(url: str) -> Path:
    """Where the embedded store keeps its generated master key: beside the store directory, not inside it."""
    root = Path(urlsplit(url).path.rstrip("/"))
    return root.with_name(root.name + KEY_FILE_SUFFIX)


def _master_key_provider(config: ArtifactConfig) -> MasterKeyProvider:
    if config.master_key:
        return MasterKeyProvider(parse_master_key(config.master_key))
    if urlsplit(config.url).scheme != "file":
        raise ArtifactConfigError(
            f"the artifact store {config.url} needs a master key (TOOLRUNNER_ARTIFACT_MASTER_KEY, base64 of 32 "
            "random bytes) or a key provider; refusing to start without one"
        )
    return MasterKeyProvider(load_or_create_key_file(key_file_for(config.url)))
