"""A run's outputs: streamed from the engine into a local spool and the artifact store, then parsed as streams."""

from __future__ import annotations

import errno
import logging
import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, BinaryIO, cast

import isolation
from config import Settings
from isolation import DirectorySink
from tasks.artifacts import ArtifactConfig, ArtifactTooLargeError, S3Options, TaskArtifacts
from tasks.service.findings import Findings, collect
from tasks.tools.base import Parser

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputFiles:
    """The outputs read back into a local directory: their sizes, the names the tool did not write, why refused."""

    directory: str
    sizes: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    refused: str | None = None

    @property
    def size(self) -> int:
        """Total bytes read."""
        return sum(self.sizes.values())


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


def read_outputs(workspace: isolation.RunWorkspace, names: list[str], sink: SpoolSink) -> OutputFiles:
    """Stream the outputs into the spool directory (and the artifact store) in one archive download.

    A tool that wrote nothing is not an error here; one whose outputs are links, over the caps or
    unreadable gets no findings and a tool_failed status saying why, rather than a task failure.
    """
    directory = sink.directory
    try:
        try:
            return OutputFiles(directory, workspace.read_into(names, sink))
        except isolation.MissingOutputError as exc:
            # The files that were there are in the directory already, whole: the archive was read to its end.
            present = [n for n in names if n not in exc.missing and os.path.isfile(os.path.join(directory, n))]
            return OutputFiles(
                directory, {n: os.path.getsize(os.path.join(directory, n)) for n in present}, exc.missing
            )
    except (
        isolation.OutputTooLargeError, isolation.UnsafeOutputError, isolation.OutputReadError, ArtifactTooLargeError
    ) as exc:  # fmt: skip
        logger.warning("outputs refused workspace=%s: %s", workspace.name, exc)
        return OutputFiles(directory, refused=str(exc))
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # The worker's disk filled mid-way (its disk guard stops it taking more runs): this run ends with what it
        # was told, and the spool directory and any half-written artifact go as they do for every refusal.
        logger.error("outputs not read workspace=%s: the worker's disk is full: %s", workspace.name, exc)
        return OutputFiles(directory, refused=f"the worker's disk filled up while reading them ({exc.strerror})")


def parse_outputs(
    parse: Parser,
    read: OutputFiles,
    stored: TaskArtifacts | None,
    inline_bytes: int,
    *,
    interruptions: tuple[type[BaseException], ...] = (),
) -> Findings:
    """Feed the parser one binary stream per output file and collect what it yields.

    Every finding also goes to the `findings.jsonl` artifact as it comes; that artifact is published
    only when the result cannot carry them all, and dropped otherwise.
    """
    if read.refused:
        return Findings()
    with ExitStack() as stack:
        streams: dict[str, BinaryIO] = {
            name: stack.enter_context(open(os.path.join(read.directory, name), "rb")) for name in read.sizes
        }
        writer = stored.findings() if stored else None
        if writer:
            stack.callback(writer.abort)  # a no-op once closed (published) below
        found = collect(
            parse(streams), inline_bytes, also=writer.write if writer else None, interruptions=interruptions
        )
        if writer and found.truncated:
            writer.close()
        return found


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
