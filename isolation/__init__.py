"""Per-tenant, per-run Docker named volumes and hardened tool containers that work on any daemon."""

from isolation.archive import DirectorySink
from isolation.container import ContainerLimits, ContainerResult, ContainerSpec, Watch, run_container
from isolation.defaults import LABEL_PREFIX as DEFAULT_LABEL_PREFIX
from isolation.defaults import TOOL_USER
from isolation.engine import connect, force_remove
from isolation.engine import translate as translate_errors
from isolation.errors import (
    DockerUnavailableError,
    ImageMissingError,
    ImageNotFoundError,
    ImagePullError,
    ImagePullTimeoutError,
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
from isolation.image import SeenImages, ensure_image, image_id, image_labels, image_present, pull_image
from isolation.naming import (
    Label,
    ManagedVolume,
    Role,
    deadline_labels,
    label_key,
    managed_filter,
    parse_created,
    parse_deadline,
    role_labels,
    validate_filename,
    validate_filenames,
    validate_identifier,
)
from isolation.streamed import StreamedWorkspace, inline_inputs, streams
from isolation.sweep import (
    SweepReport,
    cleanup_orphaned_volumes,
    list_managed_volumes,
    reap_past_deadline,
    remove_labelled,
)
from isolation.tarread import Sink
from isolation.volume import IsolatedContainerVolume
from isolation.workspace import RunWorkspace

__all__ = [
    "DEFAULT_LABEL_PREFIX",
    "TOOL_USER",
    "ContainerLimits",
    "ContainerResult",
    "ContainerSpec",
    "DirectorySink",
    "DockerUnavailableError",
    "ImageMissingError",
    "ImageNotFoundError",
    "ImagePullError",
    "ImagePullTimeoutError",
    "InvalidFilenameError",
    "InvalidIdentifierError",
    "IsolatedContainerVolume",
    "IsolationError",
    "Label",
    "ManagedVolume",
    "MissingOutputError",
    "OutputReadError",
    "OutputReadTimeoutError",
    "OutputTooLargeError",
    "Role",
    "RunWorkspace",
    "SeenImages",
    "Sink",
    "StreamedWorkspace",
    "SweepReport",
    "UnsafeOutputError",
    "VolumeConflictError",
    "VolumeStateError",
    "Watch",
    "cleanup_orphaned_volumes",
    "connect",
    "deadline_labels",
    "ensure_image",
    "force_remove",
    "image_id",
    "image_labels",
    "image_present",
    "inline_inputs",
    "label_key",
    "list_managed_volumes",
    "managed_filter",
    "parse_created",
    "parse_deadline",
    "pull_image",
    "reap_past_deadline",
    "remove_labelled",
    "role_labels",
    "run_container",
    "streams",
    "translate_errors",
    "validate_filename",
    "validate_filenames",
    "validate_identifier",
]
