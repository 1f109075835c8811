"""A container's log in one request: the engine's multiplexed stdout/stderr frames split into their two streams.

docker-py's `logs()` inspects the container first (to learn whether it has a TTY) and returns the streams joined,
so keeping stdout and stderr apart cost two log reads and two inspects; a tool container never has a TTY, so its
log always arrives as frames (an 8-byte header: stream 1 or 2, three zero bytes, the payload's size big-endian).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import docker
import docker.errors
import requests

_HEADER = struct.Struct(">BxxxL")
_STDOUT, _STDERR = 1, 2


@dataclass(frozen=True)
class Output:
    """What a container wrote to stdout and to stderr, as its log driver kept it."""

    stdout: bytes = b""
    stderr: bytes = b""


def read_logs(client: docker.DockerClient, container_id: str, *, stderr: bool = True) -> Output:
    """The container's whole log (stdout, and stderr unless told not to) in one GET; docker SDK errors on failure."""
    api = client.api
    params = {"stdout": 1, "stderr": int(stderr), "timestamps": 0, "follow": 0, "tail": "all"}
    url = f"{api.base_url}/v{api.api_version}/containers/{container_id}/logs"
    response = api.get(url, params=params, timeout=api.timeout)
    try:
        response.raise_for_status()
    except requests.exceptions.HTTPError as exc:
        raise docker.errors.create_api_error_from_http_exception(exc) from exc
    return demux(response.content)


def demux(data: bytes) -> Output:
    """Split a multiplexed log into stdout and stderr; a frame cut short keeps what arrived of it."""
    streams: dict[int, list[bytes]] = {_STDOUT: [], _STDERR: []}
    view, offset = memoryview(data), 0
    while offset + _HEADER.size <= len(view):
        kind, size = _HEADER.unpack_from(view, offset)
        offset += _HEADER.size
        if kind in streams:
            streams[kind].append(bytes(view[offset : offset + size]))
        offset += size
    return Output(b"".join(streams[_STDOUT]), b"".join(streams[_STDERR]))
