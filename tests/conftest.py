"""Shared fixtures: a real Docker Engine and a real Redis, which are failures under CI=true when absent."""

from __future__ import annotations

import os
from collections.abc import Iterator

import docker
import pytest
import redis

BUSYBOX_IMAGE = "toolrunner-busybox:local"
TOOLS_IMAGE = "toolrunner-tools:local"
LABEL_PREFIX = "studio"


def _missing(what: str, why: object) -> None:
    message = f"{what} is not available ({why}); run scripts/test, which installs and starts it"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client of the real Docker Engine (DOCKER_HOST or the local socket)."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # any failure to reach the engine means "no engine" here
        _missing("a Docker Engine", exc)
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of a real Redis (TOOLRUNNER_TEST_REDIS_URL or 127.0.0.1:6379), checked with PING."""
    url = os.environ.get("TOOLRUNNER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2) as conn:
            conn.ping()
    except redis.RedisError as exc:
        _missing("Redis", exc)
    return url


@pytest.fixture(scope="session")
def busybox_image(docker_client: docker.DockerClient) -> str:
    """The local busybox test image that scripts/build-images makes."""
    return _local_image(docker_client, BUSYBOX_IMAGE)


@pytest.fixture(scope="session")
def tools_image(docker_client: docker.DockerClient) -> str:
    """The local Debian image with nmap and ffuf that scripts/build-images makes."""
    return _local_image(docker_client, TOOLS_IMAGE)


def _local_image(client: docker.DockerClient, ref: str) -> str:
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound as exc:
        _missing(f"the image {ref}", f"{exc}; build it with scripts/build-images")
    return ref
