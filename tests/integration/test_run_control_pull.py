"""Image pulls are not tool time: a real registry on 127.0.0.1 behind a throttling proxy makes the pull slow."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

import isolation
from bench.launch import free_port
from tasks import app
from tasks.service import RunContext, RunRequest, Stage, execute, plan_run

pytestmark = pytest.mark.integration
CHUNK = 64 << 10
LAYER_BYTES = 4 << 20  # a fresh random layer: the engine cannot have it, so it is fetched chunk by chunk


def _pump(source: socket.socket, sink: socket.socket, pause: float) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(CHUNK):
            sink.sendall(data)
            time.sleep(pause)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@dataclass
class SlowProxy:
    """A TCP proxy on 127.0.0.1 that sleeps `pause` seconds after each chunk it hands the engine."""

    upstream: int
    pause: float

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.upstream)) as upstream:
            self.open.extend([client, upstream])
            pumps = [
                threading.Thread(target=_pump, args=(client, upstream, 0.0), daemon=True),
                threading.Thread(target=_pump, args=(upstream, client, self.pause), daemon=True),
            ]
            for pump in pumps:
                pump.start()
            for pump in pumps:
                pump.join()

    def close(self) -> None:
        """Stop listening and cut every connection (the engine's pull then fails)."""
        self.listener.close()
        for sock in self.open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        time.sleep(0.5)  # let the serving threads close their sockets


@pytest.fixture(scope="module")
def registry(
    docker_client: docker.DockerClient, busybox_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """docker-registry on 127.0.0.1:<free port>, holding a busybox image with a fresh 4 MiB layer; not on the engine."""
    if shutil.which("docker-registry") is None:
        why = "docker-registry is not installed (apt-get install docker-registry)"
        pytest.fail(why) if os.environ.get("CI") == "true" else pytest.skip(why)
    root, port = tmp_path_factory.mktemp("registry"), free_port()
    config = root / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_listening(port)
        _push_fresh_image(docker_client, busybox_image, root, port)
        yield port
    finally:
        process.terminate()
        process.wait(30)


def _wait_listening(port: int) -> None:
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("docker-registry did not listen")


def _push_fresh_image(client: docker.DockerClient, base: str, root: Path, port: int) -> None:
    context = root / "context"
    context.mkdir()
    (context / "blob").write_bytes(os.urandom(LAYER_BYTES))
    (context / "Dockerfile").write_text(f"FROM {base}\nCOPY blob /blob\n")
    ref = f"127.0.0.1:{port}/slow"
    image, _ = client.images.build(path=str(context), tag=f"{ref}:1", rm=True)
    client.images.push(ref, tag="1")
    client.images.remove(image.id, force=True)  # every local tag: the run must pull it


def _remove_image(client: docker.DockerClient, ref: str) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
        client.images.remove(ref, force=True)


def _plan(timeout_seconds: int) -> object:
    request = RunRequest("script", "acme", f"pull-{secrets.token_hex(3)}",
                         {"script": "echo ran > /outputs/out.txt", "timeout_seconds": timeout_seconds})  # fmt: skip
    return plan_run(app.catalogue, request, max_input_bytes=1 << 20, max_timeout_seconds=60)


def test_a_pull_slower_than_the_tools_timeout_is_not_tool_time(
    docker_client: docker.DockerClient, registry: int
) -> None:
    proxy = SlowProxy(registry, pause=0.1)  # 4 MiB in 64 KiB chunks: 6 s and more
    image = f"127.0.0.1:{proxy.port}/slow:1"
    settings = app.settings.model_copy(update={"image_overrides": {"script": image}, "pull_timeout_seconds": 120})
    stages: list[str] = []
    try:
        ctx = RunContext(docker_client, settings, "pull-slow", lambda stage, meta: stages.append(stage))
        result = execute(_plan(timeout_seconds=2), ctx).as_dict()  # type: ignore[arg-type]
    finally:
        proxy.close()
        _remove_image(docker_client, image)
    assert result["status"] == "ok" and not result["timed_out"]
    assert result["findings"] == [{"file": "out.txt", "line": "ran"}]
    assert stages[:2] == [Stage.PULLING_IMAGE, Stage.PREPARING_INPUTS]
    assert result["stats"]["tool_duration_ms"] < result["stats"]["duration_ms"]


def test_a_pull_that_times_out_says_so_and_is_not_reported_as_the_tool_timing_out(
    docker_client: docker.DockerClient, registry: int
) -> None:
    proxy = SlowProxy(registry, pause=2.0)  # would take minutes
    image = f"127.0.0.1:{proxy.port}/slow:1"
    settings = app.settings.model_copy(update={"image_overrides": {"script": image}, "pull_timeout_seconds": 3})
    try:
        ctx = RunContext(docker_client, settings, "pull-timeout", lambda stage, meta: None)
        with pytest.raises(isolation.ImagePullTimeoutError, match="did not finish in time") as caught:
            execute(_plan(timeout_seconds=30), ctx)  # type: ignore[arg-type]
    finally:
        proxy.close()  # the engine's background fetch fails with the connection
        _remove_image(docker_client, image)
    assert image in str(caught.value) and "pulling image" in str(caught.value)
