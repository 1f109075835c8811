"""Where a run's outputs go as they stream from the engine: a local spool for the parser, and the artifact store."""

from __future__ import annotations

from types import TracebackType
from typing import Any, BinaryIO, cast

from config import Settings
from isolation import DirectorySink
from tasks.artifacts import ArtifactConfig, S3Options, TaskArtifacts


class SpoolSink:
    """Writes each output file under a local directory, and also into the task's artifacts when there are any."""

    def __init__(self, directory: str, artifacts: TaskArtifacts | None) -> None:
        self.directory = directory
        self._spool = DirectorySink(directory)  # never follows or overwrites a file
        self._artifacts = artifacts

    def open(self, name: str) -> BinaryIO:
        """A writable stream for output `name`: the spool file, teed into its artifact."""
        spool = self._spool.open(name)
        if self._artifacts is None:
            return spool
        try:
            artifact = self._artifacts.open(name)
        except BaseException:
            spool.close()
            raise
        return cast(BinaryIO, _Tee(spool, artifact))


class _Tee:
    """Two writable streams as one; leaving its `with` on an error aborts the artifact (never half-published)."""

    def __init__(self, spool: BinaryIO, artifact: BinaryIO) -> None:
        self._spool, self._artifact = spool, artifact

    def write(self, data: Any) -> int:
        self._spool.write(data)
        return self._artifact.write(data)

    def __enter__(self) -> _Tee:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._artifact.__exit__(exc_type, exc, tb)
        finally:
            self._spool.close()


def artifact_config(settings: Settings) -> ArtifactConfig:
    """The artifact layer's configuration from TOOLRUNNER_ARTIFACT_* settings."""
    key = settings.artifact_master_key
    secret = settings.artifact_s3_secret_access_key
    return ArtifactConfig(
        url=settings.artifact_url,
        master_key=key.get_secret_value() if key else None,
        retention_days=settings.artifact_retention_days,
        max_artifact_bytes=settings.artifact_max_bytes,
        s3=S3Options(
            endpoint_url=settings.artifact_s3_endpoint_url,
            region=settings.artifact_s3_region,
            access_key_id=settings.artifact_s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
            part_size=settings.artifact_s3_part_size,
        ),
    )
