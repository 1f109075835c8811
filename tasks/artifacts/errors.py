"""The artifact layer's exception tree: callers catch ArtifactError and nothing lower."""

from __future__ import annotations

from tasks.errors import ToolrunnerError


class ArtifactError(ToolrunnerError):
    """Raised for any failure of the artifact layer (the root of its branch of the task layer's tree)."""


class ArtifactConfigError(ArtifactError, ValueError):
    """Raised when the store URL, the options or the keys are unusable; the worker must not start."""


class ArtifactNotFoundError(ArtifactError, LookupError):
    """Raised when a task, an artifact or an object is not in the store (or has expired)."""


class ArtifactExistsError(ArtifactError, ValueError):
    """Raised when a task writes the same artifact name twice."""


class ArtifactTooLargeError(ArtifactError):
    """Raised when an artifact grows past the configured cap; nothing of it is kept."""


class ArtifactIntegrityError(ArtifactError):
    """Raised when stored bytes fail authentication: tampered, truncated, reordered or not this artifact."""


class ArtifactKeyError(ArtifactIntegrityError):
    """Raised when an artifact's data key cannot be unwrapped: another tenant's or another master key."""


class StoreError(ArtifactError):
    """Raised when the object store itself fails (I/O error, refused request, unreachable service)."""
