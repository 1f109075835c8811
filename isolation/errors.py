"""The whole exception tree of the isolation module: callers catch IsolationError and nothing lower."""

from __future__ import annotations


class IsolationError(Exception):
    """Raised when an isolated volume or container operation fails; the base of every error here."""


class InvalidIdentifierError(IsolationError, ValueError):
    """Raised when a tenant or run id does not match the identifier rule."""


class InvalidFilenameError(IsolationError, ValueError):
    """Raised when a file name is not a safe relative POSIX path inside the volume."""


class VolumeConflictError(IsolationError):
    """Raised when Docker hands back a volume this process did not create (a reused name)."""


class VolumeStateError(IsolationError):
    """Raised when a volume is used before initialize() or after cleanup()."""


class DockerUnavailableError(IsolationError):
    """Raised when the Docker Engine cannot be reached or answers with a server error."""


class ImageMissingError(IsolationError):
    """Raised when a tool image is absent from the engine and the caller asked not to pull it."""


class ImagePullError(IsolationError):
    """Raised when pulling an image fails: the registry is unreachable or the pull broke off."""


class ImageNotFoundError(ImagePullError):
    """Raised when the registry has no such image (or refuses access to it), so it cannot be pulled."""


class ImagePullTimeoutError(ImagePullError):
    """Raised when a pull has not finished by its deadline; the caller stops waiting for it."""


class OutputTooLargeError(IsolationError):
    """Raised when an output file or a whole read exceeds its byte cap."""


class UnsafeOutputError(IsolationError):
    """Raised when an output is a link, device, FIFO or a path that leaves the requested name."""


class MissingOutputError(IsolationError):
    """Raised when requested output files do not exist in the volume."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = sorted(missing)
        super().__init__(
            f"output file(s) not found in the volume: {', '.join(self.missing)}; "
            "check that the tool wrote them (see its stderr) and that the names match its flags"
        )


class OutputReadError(IsolationError):
    """Raised when the engine's archive of the outputs is truncated, malformed or breaks off mid-stream."""


class OutputReadTimeoutError(OutputReadError):
    """Raised when downloading the archive of the outputs exceeds its deadline."""
