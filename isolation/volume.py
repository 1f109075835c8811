"""IsolatedContainerVolume: one labelled named volume per tenant and run, filled and read via the archive API."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.types import Mount

from isolation import defaults
from isolation.archive import Content, DirectorySink, InputFile, MemorySink, archive_request, prepare_inputs, tar_stream
from isolation.engine import HELPER_MOUNT, connect, force_remove, helper_image_ref, provision_helper_image, translate
from isolation.errors import IsolationError, MissingOutputError, VolumeConflictError, VolumeStateError
from isolation.naming import (
    Label,
    Role,
    VolumeIdentity,
    deadline_labels,
    label,
    managed_filter,
    new_identity,
    prefixed,
    role_labels,
    validate_filenames,
)
from isolation.tarread import ChunkReader, ReadLimits, Sink, read_archive

logger = logging.getLogger(__name__)

# get_archive's chunk_size (docker-py's default is 2 MiB): each chunk is one bytes object the reader slices
# without copying, so a large one costs a few MiB of RSS and saves per-chunk work on a 1 GiB output.
ARCHIVE_CHUNK = 4 << 20

_CLEANUP_ERRORS = (IsolationError, docker.errors.DockerException, requests.exceptions.RequestException)


class IsolatedContainerVolume:
    """A Docker named volume private to one tenant's run, removed by cleanup() or on leaving `with`."""

    def __init__(
        self,
        tenant_id: str,
        run_id: str,
        client: docker.DockerClient | None = None,
        *,
        label_prefix: str = defaults.LABEL_PREFIX,
        extra_labels: Mapping[str, str] | None = None,
        deadline: datetime | None = None,
        max_file_bytes: int = defaults.MAX_FILE_BYTES,
        max_total_bytes: int = defaults.MAX_TOTAL_BYTES,
        read_timeout: float = defaults.READ_TIMEOUT_SECONDS,
        cleanup_timeout: float = defaults.CLEANUP_TIMEOUT_SECONDS,
    ) -> None:
        self.identity: VolumeIdentity = new_identity(tenant_id, run_id, label_prefix, deadline=deadline)
        self._client = client
        self._extra_labels = dict(extra_labels or {})
        self._limits = ReadLimits(max_file_bytes, max_total_bytes, read_timeout)
        self._cleanup_timeout = cleanup_timeout
        self._helper_id: str | None = None
        self._state = "new"

    @property
    def name(self) -> str:
        """The volume's Docker name, picked at construction: tenant-<t>-run-<r>-<unix ms>-<hex>."""
        return self.identity.name

    @property
    def labels(self) -> dict[str, str]:
        """Labels on the volume and on every container of this module that holds it."""
        return {**self.identity.labels(), **prefixed(self._extra_labels, self.identity.prefix)}

    def container_labels(self, role: Role = Role.TOOL, *, deadline: datetime | None = None) -> dict[str, str]:
        """Labels for a container holding this volume: its labels, the role and (if given) its own deadline."""
        labels = role_labels(self.labels, role, prefix=self.identity.prefix)
        if deadline is not None:
            labels.update(deadline_labels(deadline, prefix=self.identity.prefix))
        return labels

    @property
    def exists(self) -> bool:
        """True from the volume's creation until cleanup() removes it."""
        return self._state in ("creating", "ready")

    def __repr__(self) -> str:
        return f"<IsolatedContainerVolume {self.name} state={self._state}>"

    def __enter__(self) -> IsolatedContainerVolume:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()

    def initialize(self, files: Mapping[str, Content] | None = None) -> str:
        """Create the volume and upload every file in one archive; return the volume name."""
        if self._state != "new":
            raise VolumeStateError(f"volume {self.name} was already initialized; create a new one per run")
        inputs = prepare_inputs(files or {})
        try:
            self._create_and_fill(inputs)
        except BaseException:
            self.cleanup()
            raise
        finally:
            for item in inputs:
                item.release()
        self._state = "ready"
        logger.info("volume ready tenant=%s run=%s volume=%s files=%d", *self._who(), len(inputs))
        return self.name

    def _create_and_fill(self, inputs: list[InputFile]) -> None:
        client = self._connected()
        self._state = "creating"
        self._create_volume(client)
        self._helper_id = self._create_helper(client)
        if inputs:
            with translate("upload the input files", context=self.name):
                client.api.put_archive(self._helper_id, HELPER_MOUNT, tar_stream(inputs))

    def get_volume_config(self, target: str = "/inputs", read_only: bool = True) -> Mount:
        """A Mount of this volume for a tool container (no copy-up from the tool's image)."""
        self._require_ready()
        return Mount(target=target, source=self.name, type="volume", read_only=read_only, no_copy=True)

    def read_into(
        self, names: Iterable[str], sink: Sink, *, max_file_bytes: int | None = None, max_total_bytes: int | None = None
    ) -> dict[str, int]:
        """Stream the named files into sink (each opened once, in archive order); return name -> size."""
        self._require_ready()
        wanted = validate_filenames(names)
        if not wanted:
            return {}
        limits = ReadLimits(
            max_file_bytes if max_file_bytes is not None else self._limits.max_file_bytes,
            max_total_bytes if max_total_bytes is not None else self._limits.max_total_bytes,
            self._limits.timeout_seconds,
        )
        path, strip_root = archive_request(wanted)
        chunks = self._open_archive(f"{HELPER_MOUNT}/{path}".rstrip("/"), wanted)
        try:
            return read_archive(ChunkReader(chunks, limits), set(wanted), strip_root, limits, sink)
        finally:
            # Closing the generator drops the HTTP response, which closes its connection: the rest of a
            # refused archive is never transferred and the helper container is unlocked at once.
            chunks.close()

    def read_files(
        self, names: Iterable[str], *, max_file_bytes: int | None = None, max_total_bytes: int | None = None
    ) -> dict[str, bytes]:
        """Return the exact bytes of the named files, in one streamed archive download."""
        sink = MemorySink()
        self.read_into(names, sink, max_file_bytes=max_file_bytes, max_total_bytes=max_total_bytes)
        return sink.result()

    def copy_files_to(
        self,
        names: Iterable[str],
        directory: str | os.PathLike[str],
        *,
        max_file_bytes: int | None = None,
        max_total_bytes: int | None = None,
    ) -> dict[str, int]:
        """Stream the named files into a local directory (never overwriting); return name -> size."""
        sink = DirectorySink(directory)
        return self.read_into(names, sink, max_file_bytes=max_file_bytes, max_total_bytes=max_total_bytes)

    def cleanup(self) -> bool:
        """Remove this module's containers holding the volume, then the volume; never raises.

        Returns True when the volume is gone (also when it already was).
        """
        if self._state in ("new", "removed"):
            self._state = "removed"
            return True
        try:
            gone = self._remove_everything(self._connected())
        except (*_CLEANUP_ERRORS, VolumeStateError) as exc:
            logger.warning("cleanup failed tenant=%s run=%s volume=%s: %s", *self._who(), exc)
            return False
        if gone:
            self._state = "removed"
            logger.info("volume removed tenant=%s run=%s volume=%s", *self._who())
        return gone

    def _open_archive(self, path: str, wanted: list[str]) -> Any:
        assert self._helper_id is not None
        client = self._connected()
        with translate("read the output files", context=self.name):
            try:
                chunks, _stat = client.api.get_archive(self._helper_id, path, chunk_size=ARCHIVE_CHUNK)
            except docker.errors.NotFound as exc:
                top = path[len(HELPER_MOUNT) + 1 :]
                raise MissingOutputError([n for n in wanted if n.split("/")[0] == top]) from exc
        return chunks

    def _create_volume(self, client: docker.DockerClient) -> None:
        with translate("create the volume", context=self.name):
            volume = client.volumes.create(name=self.name, driver="local", labels=self.labels)
        if label(volume.attrs.get("Labels"), self.identity.prefix, Label.NONCE) != self.identity.nonce:
            # Docker returns an existing volume for a reused name: never write into (or remove) it.
            self._state = "removed"
            raise VolumeConflictError(
                f"volume {self.name} already existed and is not ours (nonce mismatch); nothing was written"
            )
        logger.info("volume created tenant=%s run=%s volume=%s", *self._who())

    def _create_helper(self, client: docker.DockerClient) -> str:
        """Create (never start) the container that the archive API reads and writes through."""
        options: dict[str, Any] = {
            "image": helper_image_ref(),
            "command": ["/nonexistent"],
            "labels": self.container_labels(Role.HELPER),
            "network_disabled": True,
            "host_config": client.api.create_host_config(
                mounts=[Mount(target=HELPER_MOUNT, source=self.name, type="volume")], network_mode="none"
            ),
        }
        with translate("create the helper container", context=self.name):
            try:
                return str(client.api.create_container(**options)["Id"])
            except docker.errors.ImageNotFound:
                provision_helper_image(client)
                return str(client.api.create_container(**options)["Id"])

    def _remove_everything(self, client: docker.DockerClient) -> bool:
        if self._helper_id:
            force_remove(client, self._helper_id)
            self._helper_id = None
        deadline = time.monotonic() + self._cleanup_timeout
        delay = 0.05
        while True:
            try:
                client.api.remove_volume(self.name)
                return True
            except docker.errors.NotFound:
                return True
            except docker.errors.APIError as exc:
                if exc.status_code != 409 or time.monotonic() + delay > deadline:
                    logger.warning("volume not removed tenant=%s run=%s volume=%s: %s", *self._who(), exc)
                    return False
            self._remove_holders(client)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _remove_holders(self, client: docker.DockerClient) -> None:
        """Force-remove this module's containers (helper or tool) that still hold the volume."""
        filters = {"volume": self.name, **managed_filter(self.identity.prefix)}
        for holder in client.api.containers(all=True, filters=filters):
            force_remove(client, holder["Id"])

    def _connected(self) -> docker.DockerClient:
        self._client = connect(self._client)
        return self._client

    def _require_ready(self) -> None:
        if self._state != "ready":
            raise VolumeStateError(f"volume {self.name} is {self._state}; call initialize() first")

    def _who(self) -> tuple[str, str, str]:
        return self.identity.tenant_id, self.identity.run_id, self.name
