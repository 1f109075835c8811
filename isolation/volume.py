"""IsolatedContainerVolume: one labelled named volume per tenant and run, filled and read via the archive API."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from types import TracebackType

import docker
import docker.errors
import requests.exceptions
from docker.types import Mount

from isolation.archive import Content, DirectorySink, InputFile, MemorySink, prepare_inputs, tar_stream
from isolation.engine import HELPER_MOUNT, force_remove, translate
from isolation.errors import IsolationError, VolumeConflictError, VolumeStateError
from isolation.helper import create_helper, read_mount, remove_volume
from isolation.naming import (
    Label,
    Role,
    label,
)
from isolation.owned import RunOwned
from isolation.tarread import ReadLimits, Sink

logger = logging.getLogger(__name__)

_CLEANUP_ERRORS = (IsolationError, docker.errors.DockerException, requests.exceptions.RequestException)


class IsolatedContainerVolume(RunOwned):
    """A Docker named volume private to one tenant's run, removed by cleanup() or on leaving `with`."""

    _noun, _opener = "volume", "initialize()"

    def _start(self) -> None:
        self._helper_id: str | None = None

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
        assert self._helper_id is not None
        limits = ReadLimits(
            max_file_bytes if max_file_bytes is not None else self._limits.max_file_bytes,
            max_total_bytes if max_total_bytes is not None else self._limits.max_total_bytes,
            self._limits.timeout_seconds,
        )
        return read_mount(self._connected(), self._helper_id, HELPER_MOUNT, names, sink, limits, context=self.name)

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
        mounts = [Mount(target=HELPER_MOUNT, source=self.name, type="volume")]
        return create_helper(client, mounts, self.container_labels(Role.HELPER), context=self.name)

    def _remove_everything(self, client: docker.DockerClient) -> bool:
        if self._helper_id:
            force_remove(client, self._helper_id)
            self._helper_id = None
        who = f"tenant={self.identity.tenant_id} run={self.identity.run_id}"
        return remove_volume(client, self.name, self.identity.prefix, self._cleanup_timeout, who)
