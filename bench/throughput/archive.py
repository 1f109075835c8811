"""What one archive call costs the engine: put_archive and get_archive through a never-started container, by image.

Each probe is done `calls` times one at a time: a volume and a container holding it are made, the call is made
(or not, for the baseline), both are removed. The machine's busy CPU, dockerd's own CPU and the CPU of the dockerd
children it reaped (Engine 20.10 re-executes itself in a chroot for every archive call) are read from /proc around
the probe. The rows for put and get include the baseline's create and removal: subtract it.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import docker
from docker.types import Mount
from rich.table import Table

from bench import common
from bench.throughput.cpu import busy_seconds, process_seconds
from isolation.engine import helper_image_ref

Probe = Callable[[docker.DockerClient, str], None]


@dataclass(frozen=True)
class ArchiveCost:
    """Per call: wall, the machine's busy CPU, dockerd's own CPU and its reaped children's, in milliseconds."""

    image: str
    probe: str
    wall_ms: float
    machine_ms: float
    dockerd_ms: float
    children_ms: float


def _put(client: docker.DockerClient, container: str) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("in.txt")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"ok\n"))
    client.api.put_archive(container, "/data", buffer.getvalue())


def _get(client: docker.DockerClient, container: str) -> None:
    chunks, _ = client.api.get_archive(container, "/data")
    b"".join(chunks)


PROBES: dict[str, Probe | None] = {"create + remove only": None, "put_archive": _put, "get_archive": _get}


def measure(client: docker.DockerClient, images: list[str], calls: int) -> list[ArchiveCost]:
    """Every probe on every image, `calls` times each."""
    dockerd = [int(pid) for pid in subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout.split()]
    found = []
    for image in [helper_image_ref(), *images]:
        for name, probe in PROBES.items():
            before = _snapshot(dockerd)
            for _ in range(calls):
                _one(client, image, probe)
            after = _snapshot(dockerd)
            per_call = [(a - b) * 1000 / calls for a, b in zip(after, before, strict=True)]
            found.append(ArchiveCost(image, name, *per_call))
    return found


def _snapshot(dockerd: list[int]) -> tuple[float, float, float, float]:
    own = sum(process_seconds(pid) for pid in dockerd)
    children = sum(process_seconds(pid, children=True) for pid in dockerd)
    return time.perf_counter(), busy_seconds(), own, children


def _one(client: docker.DockerClient, image: str, probe: Probe | None) -> None:
    volume = client.api.create_volume(labels={"toolrunner.bench": "archive"})["Name"]
    try:
        host_config = client.api.create_host_config(mounts=[Mount("/data", volume, type="volume")], network_mode="none")
        container = client.api.create_container(image, ["/nonexistent"], host_config=host_config)["Id"]
        try:
            if probe is not None:
                probe(client, container)
        finally:
            client.api.remove_container(container, force=True)
    finally:
        client.api.remove_volume(volume)


def archive_table(costs: list[ArchiveCost], calls: int) -> Table:
    """The probes, one row each."""
    title = f"one archive call, by image ({calls} one at a time each; put and get rows include create + remove)"
    columns = ("image", "probe", "wall ms", "machine CPU ms", "dockerd ms", "dockerd children ms")
    table = common.table(title, *columns)
    for c in costs:
        cells = (f"{c.wall_ms:.0f}", f"{c.machine_ms:.0f}", f"{c.dockerd_ms:.0f}", f"{c.children_ms:.0f}")
        table.add_row(c.image, c.probe, *cells)
    return table
