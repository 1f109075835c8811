"""Artifacts: a run's raw outputs streamed into a file or S3 store, encrypted per tenant, indexed and expired."""

from tasks.artifacts.config import ArtifactConfig, key_file_for, open_artifacts
from tasks.artifacts.errors import (
    ArtifactConfigError,
    ArtifactError,
    ArtifactExistsError,
    ArtifactIntegrityError,
    ArtifactKeyError,
    ArtifactNotFoundError,
    ArtifactTooLargeError,
    StoreError,
)
from tasks.artifacts.index import ArtifactRecord, TaskIndex
from tasks.artifacts.keys import KeyProvider, MasterKeyProvider, new_master_key
from tasks.artifacts.retention import RetentionReport
from tasks.artifacts.service import RESULT_NAME, Artifacts
from tasks.artifacts.store import ObjectStore, S3Options, open_store
from tasks.artifacts.writer import FINDINGS_NAME, ArtifactLimits, FindingsWriter, TaskArtifacts

__all__ = [
    "FINDINGS_NAME",
    "RESULT_NAME",
    "ArtifactConfig",
    "ArtifactConfigError",
    "ArtifactError",
    "ArtifactExistsError",
    "ArtifactIntegrityError",
    "ArtifactKeyError",
    "ArtifactLimits",
    "ArtifactNotFoundError",
    "ArtifactRecord",
    "ArtifactTooLargeError",
    "Artifacts",
    "FindingsWriter",
    "KeyProvider",
    "MasterKeyProvider",
    "ObjectStore",
    "RetentionReport",
    "S3Options",
    "StoreError",
    "TaskArtifacts",
    "TaskIndex",
    "key_file_for",
    "new_master_key",
    "open_artifacts",
    "open_store",
]
