"""Per-tenant, per-run Docker named volumes and hardened tool containers that work on any daemon."""

from isolation.container import ContainerLimits, ContainerResult, ContainerSpec, ensure_image, run_container
from isolation.engine import connect
from isolation.engine import translate as translate_errors
from isolation.errors import (
    DockerUnavailableError,
    ImageNotFoundError,
    InvalidFilenameError,
    InvalidIdentifierError,
    IsolationError,
    MissingOutputError,
    OutputReadError,
    OutputReadTimeoutError,
    OutputTooLargeError,
    UnsafeOutputError,
    VolumeConflictError,
    VolumeStateError,
)
from isolation.naming import parse_created, validate_filename, validate_filenames, validate_identifier
from isolation.sweep import SweepReport, cleanup_orphaned_volumes, remove_labelled
from isolation.volume import IsolatedContainerVolume

__all__ = [
    "ContainerLimits",
    "ContainerResult",
    "ContainerSpec",
    "DockerUnavailableError",
    "ImageNotFoundError",
    "InvalidFilenameError",
    "InvalidIdentifierError",
    "IsolatedContainerVolume",
    "IsolationError",
    "MissingOutputError",
    "OutputReadError",
    "OutputReadTimeoutError",
    "OutputTooLargeError",
    "SweepReport",
    "UnsafeOutputError",
    "VolumeConflictError",
    "VolumeStateError",
    "cleanup_orphaned_volumes",
    "connect",
    "ensure_image",
    "parse_created",
    "remove_labelled",
    "run_container",
    "translate_errors",
    "validate_filename",
    "validate_filenames",
    "validate_identifier",
]
