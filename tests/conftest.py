"""Shared fixtures: a real Docker Engine and a real Redis, which are failures under CI=true when absent."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

import docker
import pytest
import redis

from bench import loopback

BUSYBOX_IMAGE = "toolrunner-busybox:local"
TOOLS_IMAGE = "toolrunner-tools:local"
LABEL_PREFIX = "studio"
REDIS_URL = os.environ.get("TOOLRUNNER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

ARTIFACT_ROOTS: list[str] = []  # the session's artifact store, made at configure time
TEST_TOOLS = ("script", "absent", "suicide", "flood")  # test-only tools, tests/tooldefs/<name>.py
# The settings the test process and the workers it starts share (the app reads them on first use).
TEST_ENVIRONMENT = {
    "TOOLRUNNER_BROKER_URL": REDIS_URL,
    "TOOLRUNNER_TOOL_NETWORK": "none",
    "TOOLRUNNER_EXTRA_TOOL_MODULES": json.dumps([f"tests.tooldefs.{t}" for t in TEST_TOOLS]),
    "TOOLRUNNER_IMAGE_NMAP": TOOLS_IMAGE,
    "TOOLRUNNER_IMAGE_FFUF": TOOLS_IMAGE,
    **loopback.ENVIRONMENT,  # scope stays enforced; tenants get loopback through the `scoped` fixture
}


def pytest_configure(config: pytest.Config) -> None:
    """Give the test process the shared settings (where the environment does not set them) before any test.

    Artifacts (and the audit trail) go to a store of this session's own, removed at its end with its generated keys
    and the workers' audit spools.
    """
    for key, value in TEST_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    if "TOOLRUNNER_ARTIFACT_URL" not in os.environ:
        ARTIFACT_ROOTS.append(tempfile.mkdtemp(prefix="toolrunner-test-artifacts-"))
        os.environ["TOOLRUNNER_ARTIFACT_URL"] = f"file://{ARTIFACT_ROOTS[0]}/store"
        os.environ.setdefault("TOOLRUNNER_AUDIT_SPOOL_DIR", f"{ARTIFACT_ROOTS[0]}/audit-spool")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the session's artifact store."""
    for root in ARTIFACT_ROOTS:
        shutil.rmtree(root, ignore_errors=True)


def _missing(what: str, why: object) -> None:
    message = f"{what} is not available ({why}); run scripts/test, which installs and starts it"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def program(name: str, package: str) -> str:
    """The path of a command scripts/test installs from a Debian package; missing: a failure under CI=true."""
    path = shutil.which(name)
    if path is None:
        _missing(f"{name} (Debian's {package})", "not on PATH")
    return str(path)


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


def database_url(url: str, db: int) -> str:
    """The same Redis server's database `db`."""
    return url.rsplit("/", 1)[0] + f"/{db}"


@contextlib.contextmanager
def flushed_database(url: str) -> Iterator[redis.Redis]:
    """A client on the Redis database at `url`, flushed before and after: a test module's own database."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of a real Redis (TOOLRUNNER_TEST_REDIS_URL or 127.0.0.1:6379), checked with PING."""
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as conn:
            conn.ping()
    except redis.RedisError as exc:
        _missing("Redis", exc)
    return REDIS_URL


@pytest.fixture
def scoped() -> Iterator[Callable[..., None]]:
    """`scoped(tenant, ..., url=REDIS_URL, intrusive=True)` lets tenants scan loopback and (unless intrusive=False)
    run intrusive tools (bench.loopback); dropped at teardown."""
    granted: list[tuple[redis.Redis, tuple[str, ...]]] = []

    def grant(*tenants: str, url: str = REDIS_URL, intrusive: bool = True) -> None:
        client = redis.Redis.from_url(url)
        loopback.grant(client, *tenants, intrusive=intrusive)
        granted.append((client, tenants))

    yield grant
    for client, tenants in granted:
        with contextlib.suppress(redis.RedisError):
            loopback.revoke(client, *tenants)
        client.close()


@pytest.fixture(scope="session")
def busybox_image(docker_client: docker.DockerClient) -> str:
    """The local busybox test image that scripts/build-images makes."""
    return _local_image(docker_client, BUSYBOX_IMAGE)


@pytest.fixture(scope="session")
def tools_image(docker_client: docker.DockerClient) -> str:
    """The local Debian image with nmap, ffuf, whatweb, sslscan, gobuster, sqlmap and wafw00f (scripts/build-images)."""
    return _local_image(docker_client, TOOLS_IMAGE)


def _local_image(client: docker.DockerClient, ref: str) -> str:
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound as exc:
        _missing(f"the image {ref}", f"{exc}; build it with scripts/build-images")
    return ref


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how long the end-to-end (integration) part of the run took, to keep an eye on CI's budget."""
    seconds = sum(
        getattr(report, "duration", 0.0)
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "nodeid", "").startswith("tests/integration/")
    )
    terminalreporter.write_line(f"end-to-end (tests/integration) time: {seconds:.1f} s")
