"""Connecting to the Docker Engine and turning docker SDK exceptions into this module's errors."""

from __future__ import annotations

import hashlib
import io
import logging
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import docker
import docker.errors
import requests.exceptions

from isolation.errors import DockerUnavailableError, IsolationError

logger = logging.getLogger(__name__)

HELPER_REPOSITORY = "toolrunner-helper"
HELPER_MOUNT = "/data"
# Where a run workspace's helper holds its two volumes.
WORKSPACE_INPUTS = "/in"
WORKSPACE_OUTPUTS = "/out"
# The helper image holds only mount points, world-writable: Docker copies a directory's mode into an
# empty volume at its first mount ("copy-up"), which is what makes the volume root writable by any uid.
_HELPER_DIRS = (("data", 0o777), (WORKSPACE_OUTPUTS.lstrip("/"), 0o777))


def connect(client: docker.DockerClient | None) -> docker.DockerClient:
    """Return client, or a client from the environment (DOCKER_HOST, ...) when it is None."""
    if client is not None:
        return client
    with translate("connect to the Docker Engine"):
        made = docker.from_env()
    if made.api.base_url.startswith("http+docker://"):
        # A unix socket (or ssh, npipe): no HTTP proxy or .netrc applies, yet requests looks both up in the
        # environment on every request, ~0.3-0.4 ms of CPU each (measured: 1.2 -> 0.9 ms a request); a tcp://
        # engine keeps them.
        made.api.trust_env = False
    return made


@contextmanager
def translate(action: str, *, context: str = "") -> Iterator[None]:
    """Re-raise docker SDK and transport errors as IsolationError subclasses, keeping the cause."""
    where = f" ({context})" if context else ""
    try:
        yield
    except IsolationError:
        raise
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise DockerUnavailableError(
            f"could not {action}{where}: the Docker Engine did not answer ({exc}); "
            "check DOCKER_HOST and that the daemon runs"
        ) from exc
    except docker.errors.APIError as exc:
        if exc.is_server_error():
            raise DockerUnavailableError(f"could not {action}{where}: engine error {exc.explanation}") from exc
        raise IsolationError(f"could not {action}{where}: {exc.explanation or exc}") from exc
    except docker.errors.DockerException as exc:
        raise DockerUnavailableError(f"could not {action}{where}: {exc}") from exc


def force_remove(client: docker.DockerClient, container_id: str, *, volumes: bool = False) -> None:
    """Kill (SIGKILL, no grace period) and remove a container; one already gone is not an error.

    The engine's force removal kills before it removes, so a running tool stops at once: this is also
    how a cancelled run's containers are stopped. With volumes, the anonymous volumes the container made go
    with it, unless another container still holds one (the engine then keeps it, and says so only in its log).
    """
    with translate("remove the container", context=container_id[:12]), suppress(docker.errors.NotFound):
        client.api.remove_container(container_id, force=True, v=volumes)


def helper_image_tar() -> bytes:
    """A tarball holding only the helper's mount point: the whole root filesystem of the helper image."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, mode in _HELPER_DIRS:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 0
            archive.addfile(info)
    return buffer.getvalue()


def helper_image_ref() -> str:
    """The helper image's reference, tagged by a hash of its contents so a change makes a new one."""
    digest = hashlib.sha256(helper_image_tar()).hexdigest()[:12]
    return f"{HELPER_REPOSITORY}:{digest}"


def provision_helper_image(client: docker.DockerClient) -> str:
    """Import the helper image from its in-memory tarball (no registry involved); return its ref."""
    ref = helper_image_ref()
    repository, tag = ref.split(":")
    with translate("import the helper image", context=ref):
        client.api.import_image_from_data(helper_image_tar(), repository=repository, tag=tag)
    logger.info("imported helper image %s", ref)
    return ref
