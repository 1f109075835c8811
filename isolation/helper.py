"""The never-started helper container that volumes are filled and read through, and removing a volume it held.

Shared by IsolatedContainerVolume (one volume, one helper) and RunWorkspace (a run's two volumes, one helper).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import docker
import docker.errors
from docker.types import Mount

from isolation.archive import archive_request
from isolation.engine import force_remove, helper_image_ref, provision_helper_image, translate
from isolation.errors import MissingOutputError
from isolation.naming import managed_filter, validate_filenames
from isolation.tarread import ChunkReader, ReadLimits, Sink, read_archive

logger = logging.getLogger(__name__)

# get_archive's chunk_size (docker-py's default is 2 MiB): each chunk is one bytes object the reader slices
# without copying, so a large one costs a few MiB of RSS and saves per-chunk work on a 1 GiB output.
ARCHIVE_CHUNK = 4 << 20


def create_helper(
    client: docker.DockerClient, mounts: Sequence[Mount], labels: Mapping[str, str], *, context: str, name: str = ""
) -> str:
    """Create (never start) a helper container holding mounts; import the helper image first if it is absent."""
    options: dict[str, Any] = {
        "image": helper_image_ref(),
        "command": ["/nonexistent"],
        "labels": dict(labels),
        "network_disabled": True,
        "host_config": client.api.create_host_config(mounts=list(mounts), network_mode="none"),
        **({"name": name} if name else {}),
    }
    with translate("create the helper container", context=context):
        try:
            return str(client.api.create_container(**options)["Id"])
        except docker.errors.ImageNotFound:
            provision_helper_image(client)
            return str(client.api.create_container(**options)["Id"])


def read_mount(
    client: docker.DockerClient,
    helper_id: str,
    mount: str,
    names: Iterable[str],
    sink: Sink,
    limits: ReadLimits,
    *,
    context: str,
) -> dict[str, int]:
    """Stream the named files under the helper's mount into sink, in one archive download; return name -> size."""
    wanted = validate_filenames(names)
    if not wanted:
        return {}
    path, strip_root = archive_request(wanted)
    chunks = _open_archive(client, helper_id, (mount, path), wanted, context)
    try:
        return read_archive(ChunkReader(chunks, limits), set(wanted), strip_root, limits, sink)
    finally:
        # Closing the generator drops the HTTP response, which closes its connection: the rest of a
        # refused archive is never transferred and the helper container is unlocked at once.
        chunks.close()


def _open_archive(
    client: docker.DockerClient, helper_id: str, where: tuple[str, str], wanted: list[str], context: str
) -> Any:
    mount, top = where
    with translate("read the output files", context=context):
        try:
            chunks, _stat = client.api.get_archive(helper_id, f"{mount}/{top}".rstrip("/"), chunk_size=ARCHIVE_CHUNK)
        except docker.errors.NotFound as exc:
            raise MissingOutputError([n for n in wanted if n.split("/")[0] == top]) from exc
    return chunks


def remove_volume(client: docker.DockerClient, name: str, prefix: str, timeout: float, who: str) -> bool:
    """Remove a volume, force-removing the managed containers that still hold it and retrying "in use" (409) with
    backoff for up to timeout seconds; whether it is gone (also when it already was). `who` goes into the log."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            client.api.remove_volume(name)
            return True
        except docker.errors.NotFound:
            return True
        except docker.errors.APIError as exc:
            if exc.status_code != 409 or time.monotonic() + delay > deadline:
                logger.warning("volume not removed %s volume=%s: %s", who, name, exc)
                return False
        for holder in client.api.containers(all=True, filters={"volume": name, **managed_filter(prefix)}):
            force_remove(client, holder["Id"])
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
