"""RunWorkspace: a run's inputs and outputs volumes, made, filled, read and removed through one helper container.

The helper (created, never started) holds both volumes, and creating it creates them: anonymous volumes, labelled
through the mounts' volume options, so the engine names each one afresh and no earlier volume can be handed back.
One volume list by this run's nonce then checks that both carry its labels and tells their names; the tool container
mounts them by name (inputs read-only). Removing the helper with its volumes (`v`) removes both once the tool
container is gone. Engine calls: the helper's create, the list, one put_archive (none without inputs), one
get_archive, the helper's removal; IsolatedContainerVolume needs a volume create and a removal of its own for each.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.types import Mount

from isolation.archive import Content, InputFile, MemorySink, prepare_inputs, tar_stream
from isolation.engine import WORKSPACE_INPUTS, WORKSPACE_OUTPUTS, force_remove, translate
from isolation.errors import IsolationError, VolumeConflictError, VolumeStateError
from isolation.helper import create_helper, read_mount, remove_volume
from isolation.naming import (
    Label,
    Role,
    label,
    managed_filter,
    prefixed,
)
from isolation.owned import RunOwned
from isolation.tarread import ReadLimits, Sink

logger = logging.getLogger(__name__)

CLEANUP_ERRORS = (IsolationError, docker.errors.DockerException, requests.exceptions.RequestException)
# Which volume is which, in its `<prefix>.contents` label, and where the helper mounts it.
_WHERE = {"inputs": WORKSPACE_INPUTS, "outputs": WORKSPACE_OUTPUTS}


class RunWorkspace(RunOwned):
    """The two volumes of one tenant's run and the helper container that holds them; removed by cleanup()."""

    _noun, _opener = "workspace", "open()"

    def _start(self) -> None:
        self._helper: str | None = None  # its id, or its name while the create's answer is not in
        self._volumes: dict[str, str] = {}  # contents -> volume name

    def __enter__(self) -> RunWorkspace:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup(verify=exc_type is not None)

    def open(self, files: Mapping[str, Content] | None = None) -> None:
        """Create both volumes (with the helper), check them by nonce, and upload every input file in one archive."""
        if self._state != "new":
            raise VolumeStateError(f"workspace {self.name} was already opened; make a new one per run")
        inputs = prepare_inputs(files or {})
        try:
            self._create_and_fill(self._connected(), inputs)
        except BaseException:
            self.cleanup(verify=True)
            raise
        finally:
            for item in inputs:
                item.release()
        self._state = "ready"
        logger.info(
            "workspace ready tenant=%s run=%s workspace=%s volumes=%s files=%d",
            *self._who(), ",".join(self._volumes[c][:12] for c in _WHERE), len(inputs),
        )  # fmt: skip

    def mounts(self, inputs_at: str, outputs_at: str) -> list[Mount]:
        """The tool container's mounts: inputs read-only, outputs read-write, neither copied up from its image."""
        self._require_ready()
        return [
            Mount(target=inputs_at, source=self._volumes["inputs"], type="volume", read_only=True, no_copy=True),
            Mount(target=outputs_at, source=self._volumes["outputs"], type="volume", read_only=False, no_copy=True),
        ]

    def read_into(
        self, names: Iterable[str], sink: Sink, *, max_file_bytes: int | None = None, max_total_bytes: int | None = None
    ) -> dict[str, int]:
        """Stream the named outputs into sink (each opened once, in archive order); return name -> size."""
        self._require_ready()
        assert self._helper is not None
        limits = ReadLimits(
            max_file_bytes if max_file_bytes is not None else self._limits.max_file_bytes,
            max_total_bytes if max_total_bytes is not None else self._limits.max_total_bytes,
            self._limits.timeout_seconds,
        )
        return read_mount(self._connected(), self._helper, WORKSPACE_OUTPUTS, names, sink, limits, context=self.name)

    def read_files(self, names: Iterable[str]) -> dict[str, bytes]:
        """The exact bytes of the named outputs, in one streamed archive download."""
        sink = MemorySink()
        self.read_into(names, sink)
        return sink.result()

    def cleanup(self, *, verify: bool = False) -> bool:
        """Remove the helper and, with it, both volumes; never raises. Returns True when they are gone.

        The engine removes a container's anonymous volumes with it unless another container still holds them, and
        does not report one it could not remove. So unless the caller knows the tool container is gone (`verify`
        False: its removal succeeded), the volumes are looked up by nonce and removed with their holders, retrying
        "in use" for a bounded time, as IsolatedContainerVolume does.
        """
        if self._state in ("new", "removed"):
            self._state = "removed"
            return True
        try:
            gone = self._remove(self._connected(), verify or self._state != "ready")
        except CLEANUP_ERRORS as exc:
            logger.warning("cleanup failed tenant=%s run=%s workspace=%s: %s", *self._who(), exc)
            return False
        if gone:
            self._state = "removed"
            logger.info("workspace removed tenant=%s run=%s workspace=%s", *self._who())
        return gone

    def _create_and_fill(self, client: docker.DockerClient, inputs: list[InputFile]) -> None:
        self._helper = self._create_helper(client)
        self._volumes = self._checked_volumes(client)
        if inputs:
            with translate("upload the input files", context=self.name):
                client.api.put_archive(self._helper, WORKSPACE_INPUTS, tar_stream(inputs))

    def _create_helper(self, client: docker.DockerClient) -> str:
        # Named: until the create answers, cleanup can find the helper (and its volumes) by that name.
        self._state, self._helper = "creating", self.name
        mounts = [self._volume_mount(contents, where) for contents, where in _WHERE.items()]
        try:
            return create_helper(client, mounts, self.container_labels(Role.HELPER), context=self.name, name=self.name)
        except IsolationError as exc:
            if isinstance(exc.__cause__, docker.errors.APIError) and exc.__cause__.status_code == 409:
                self._helper = None  # a container of that name exists and is not ours: never remove it
                raise VolumeConflictError(f"a container named {self.name} already exists; nothing was made") from exc
            raise

    def _volume_mount(self, contents: str, where: str) -> Mount:
        """An anonymous volume (no source) made with the helper, labelled; only outputs copy up the helper image's
        world-writable directory, which makes its root writable by a non-root tool."""
        labels = {**self.labels, **prefixed({Label.CONTENTS: contents}, self.identity.prefix)}
        return Mount(target=where, source=None, type="volume", no_copy=contents != "outputs", labels=labels)

    def _checked_volumes(self, client: docker.DockerClient) -> dict[str, str]:
        """contents -> name of the volumes carrying this run's nonce: exactly one inputs and one outputs volume."""
        listed = self._listed(client)
        found = {label(v.get("Labels"), self.identity.prefix, Label.CONTENTS) or "": str(v["Name"]) for v in listed}
        if len(listed) != len(_WHERE) or set(found) != set(_WHERE):
            raise VolumeConflictError(
                f"workspace {self.name}: expected one inputs and one outputs volume with its nonce, found "
                f"{sorted(found.items())}; the engine did not label the volumes it made (nothing was written)"
            )
        return found

    def _remove(self, client: docker.DockerClient, verify: bool) -> bool:
        if self._helper:
            force_remove(client, self._helper, volumes=True)
            self._helper = None
        if not verify:
            return True
        who = f"tenant={self.identity.tenant_id} run={self.identity.run_id}"
        left = self._listed(client)
        return all([remove_volume(client, v["Name"], self.identity.prefix, self._cleanup_timeout, who) for v in left])

    def _listed(self, client: docker.DockerClient) -> list[dict[str, Any]]:
        """The volumes labelled with this run's nonce: one call."""
        filters = managed_filter(self.identity.prefix, **{Label.NONCE.value: self.identity.nonce})
        with translate("list the workspace's volumes", context=self.name):
            return list(client.api.volumes(filters=filters).get("Volumes") or [])
