"""Tool containers and image pulls on a real engine, with a stand-in registry on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import docker
import pytest

from bench.launch import free_port
from isolation import (
    ContainerLimits,
    ContainerSpec,
    ImageMissingError,
    ImageNotFoundError,
    ImagePullError,
    ImagePullTimeoutError,
    IsolatedContainerVolume,
    Role,
    pull_image,
    run_container,
)

pytestmark = pytest.mark.integration


BLOB = "sha256:" + "ab" * 32
MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 100, "digest": BLOB},
    "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 100, "digest": BLOB}],
}


class StandInRegistry(BaseHTTPRequestHandler):
    """Has no images but `stalled/tool:1`, whose manifest it serves and whose blobs it never sends."""

    release = threading.Event()
    blob_requests = 0

    def do_GET(self) -> None:
        if self.path == "/v2/":
            self._reply(200, {})
        elif self.path.startswith("/v2/stalled/tool/manifests/"):  # by tag, then by the digest it computed
            self._reply(200, MANIFEST, MANIFEST["mediaType"])
        elif self.path.startswith("/v2/stalled/tool/blobs/"):
            type(self).blob_requests += 1
            self.release.wait(60)  # the pull has started and now hangs: the engine waits on us, we on it
        else:
            self._reply(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})

    do_HEAD = do_GET

    def _reply(self, status: int, body: object, content_type: str = "application/json") -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # keep pytest's output clean
        pass


@pytest.fixture
def registry() -> Iterator[str]:
    """host:port of a stand-in registry on loopback, which the engine trusts without TLS."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), StandInRegistry)
    server.daemon_threads = True
    StandInRegistry.release.clear()
    StandInRegistry.blob_requests = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    StandInRegistry.release.set()
    server.shutdown()
    server.server_close()


def test_an_image_the_registry_does_not_have_is_not_found(docker_client: docker.DockerClient, registry: str) -> None:
    with pytest.raises(ImageNotFoundError, match="nope/tool:1"):
        pull_image(docker_client, f"{registry}/nope/tool:1", timeout_seconds=60)


def test_a_pull_that_stalls_after_it_started_stops_waiting_at_its_deadline(
    docker_client: docker.DockerClient, registry: str
) -> None:
    with pytest.raises(ImagePullTimeoutError, match="stopped waiting"):
        pull_image(docker_client, f"{registry}/stalled/tool:1", timeout_seconds=3)
    assert StandInRegistry.blob_requests > 0, "the engine had got past the manifest: the pull was under way"


def test_a_pull_from_an_unreachable_registry_is_a_pull_error_not_a_missing_image(
    docker_client: docker.DockerClient,
) -> None:
    with pytest.raises(ImagePullError, match="could not be pulled") as caught:
        pull_image(docker_client, f"127.0.0.1:{free_port()}/tool:1", timeout_seconds=60)
    assert not isinstance(caught.value, ImageNotFoundError)


def test_a_run_that_must_not_pull_says_the_image_is_missing_and_leaves_nothing(
    docker_client: docker.DockerClient,
) -> None:
    with IsolatedContainerVolume("acme", "no-pull", docker_client) as volume:
        volume.initialize({})
        spec = ContainerSpec(
            image="toolrunner-absent:0.0.0",
            entrypoint=["true"],
            argv=[],
            mounts=[volume.get_volume_config()],
            labels=volume.container_labels(Role.TOOL),
            image_hint="set TOOLRUNNER_IMAGE_ABSENT",
        )
        with pytest.raises(ImageMissingError, match=r"toolrunner-absent:0\.0\.0.*TOOLRUNNER_IMAGE_ABSENT"):
            run_container(docker_client, spec, 30, pull=False)


def test_a_tool_runs_with_the_open_files_limit_soft_and_hard(
    docker_client: docker.DockerClient, busybox_image: str
) -> None:
    with IsolatedContainerVolume("acme", "nofile", docker_client) as volume:
        volume.initialize({})
        spec = ContainerSpec(
            image=busybox_image,
            entrypoint=["sh", "-c"],
            argv=["ulimit -Sn; ulimit -Hn"],
            mounts=[],
            labels=volume.container_labels(Role.TOOL),
            limits=ContainerLimits(nofile=512),
        )
        result = run_container(docker_client, spec, 60)
    assert result.exit_code == 0 and result.stdout_tail.split() == ["512", "512"]
