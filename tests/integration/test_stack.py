"""The production stack started by `scripts/stack up` (two worker/DinD pairs), driven from the host as the API tier.

Slow (a few minutes cold: it builds every image and starts eight containers), so everything is checked
against one stack. `scripts/stack smoke` runs this file against a stack that is already up and leaves it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.tls
import pytest
import redis
import requests

import tasks.webhooks
from bench import loopback
from bench.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
KEEP = os.environ.get("TOOLRUNNER_STACK_KEEP") == "1"
PROJECT = os.environ.get("TOOLRUNNER_STACK_PROJECT", "toolrunner-stack" if KEEP else "toolrunner-smoke")
PORT_BASE = int(os.environ.get("TOOLRUNNER_STACK_PORT_BASE", "16300" if KEEP else "16400"))
PAIRS = ("", "-2")
NODES = {"": "worker", "-2": "worker-2"}
WAIT = 180
# The stack must not inherit the suite's settings (its Redis, its test-only tool modules); only these: a sweep
# each minute, and webhooks to a plain-http receiver on loopback (the containers cannot trust a test's CA).
STACK_ENVIRONMENT = {
    "TOOLRUNNER_SWEEP_CRON": "* * * * *",
    "TOOLRUNNER_WEBHOOK_ALLOW_HTTP": "true",
    "TOOLRUNNER_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
}
PROJECT_LABEL = f"com.docker.compose.project={PROJECT}"


@dataclass(frozen=True)
class Stack:
    """A running stack: what `up` printed, and clients of the host engine and of each pair's inner daemon."""

    values: dict[str, str]
    host: docker.DockerClient
    inner: dict[str, docker.DockerClient]
    networks_before: frozenset[str]

    @property
    def broker_url(self) -> str:
        return self.values["TOOLRUNNER_BROKER_URL"]

    @property
    def flower_url(self) -> str:
        return self.values["FLOWER_URL"]

    def container(self, service: str) -> Any:
        """The container of a compose service of this stack."""
        found = self.host.containers.list(
            all=True, filters={"label": [PROJECT_LABEL, f"com.docker.compose.service={service}"]}
        )
        assert len(found) == 1, f"{service}: {found}"
        return found[0]


def stack_command(*args: str) -> subprocess.CompletedProcess[str]:
    """Run scripts/stack for this test's project with a clean TOOLRUNNER_* environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLRUNNER_")}
    keep = {k: os.environ[k] for k in ("TOOLRUNNER_STATE", "TOOLRUNNER_CACHE", "TOOLRUNNER_MIRROR") if k in os.environ}
    env |= keep | STACK_ENVIRONMENT
    env |= {
        "TOOLRUNNER_STACK_PROJECT": PROJECT,
        "TOOLRUNNER_STACK_PAIRS": "2",
        "TOOLRUNNER_STACK_PORT_BASE": str(PORT_BASE),
    }
    return subprocess.run([str(ROOT / "scripts/stack"), *args], env=env, capture_output=True, text=True, timeout=840)


@pytest.fixture(scope="module")
def stack(docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`scripts/stack up` with two pairs (reused when already up); `down` at the end unless the stack is kept."""
    if not KEEP:
        stack_command("down")  # a stack a killed session left
    networks = frozenset(network.name for network in docker_client.networks.list())
    started = time.monotonic()
    done = stack_command("up")
    assert done.returncode == 0, f"scripts/stack up failed:\n{done.stderr[-4000:]}"
    print(f"\n[stack] up in {time.monotonic() - started:.0f}s")
    values = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    with redis.Redis.from_url(Stack(values, docker_client, {}, networks).broker_url) as conn:
        loopback.grant(conn, "acme", "tenant-0", "tenant-1")  # the tenants the smoke scans loopback for
    inner = {tail: _inner_client(docker_client, tail, tmp_path_factory.mktemp(f"certs{tail}")) for tail in PAIRS}
    yield Stack(values, docker_client, inner, networks)
    for client in inner.values():
        client.close()
    if not KEEP:
        stack_command("down")


def _inner_client(host: docker.DockerClient, tail: str, directory: Path) -> docker.DockerClient:
    """A client of a pair's inner daemon over its mutual-TLS endpoint, with the client certificate it made."""
    dind = host.containers.list(filters={"label": [PROJECT_LABEL, f"com.docker.compose.service=dind{tail}"]})[0]
    stream, _ = dind.get_archive("/certs/client")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        archive.extractall(directory, filter="data")
    certs = directory / "client"
    cert = (str(certs / "cert.pem"), str(certs / "key.pem"))
    return tls_client(tail, docker.tls.TLSConfig(client_cert=cert, ca_cert=str(certs / "ca.pem"), verify=True))


def tls_client(tail: str, tls: docker.tls.TLSConfig) -> docker.DockerClient:
    """A client of a pair's TLS endpoint that verifies against its CA only."""
    port = PORT_BASE + 10 + PAIRS.index(tail)
    client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{port}", tls=tls, timeout=60, version="1.41")
    # requests prefers REQUESTS_CA_BUNDLE (set on these machines) to the session's CA: trust only the stack's.
    client.api.trust_env = False
    return client


def submit(broker_url: str, calls: list[tuple[str, str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """`run_tool.delay(...)` for each call in a fresh host process whose broker is the stack's Redis; the results."""
    code = (
        "import json, sys\nfrom tasks import run_tool\n"
        "handles = [run_tool.delay(*call) for call in json.load(sys.stdin)]\n"
        f"print(json.dumps([handle.get(timeout={WAIT}) for handle in handles]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLRUNNER_")} | {
        "TOOLRUNNER_BROKER_URL": broker_url
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(calls),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=WAIT + 60,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


@contextlib.contextmanager
def listener() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts and closes connections: an open port for nmap to find."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                server.accept()[0].close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        server.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def created_for(client: docker.DockerClient, since: datetime, run_ids: set[str]) -> set[str]:
    """The run ids whose containers the daemon created since then, read from its events' labels."""
    until = int(datetime.now(UTC).timestamp()) + 1
    events = client.events(
        since=int(since.timestamp()) - 1, until=until, filters={"type": "container", "event": "create"}, decode=True
    )
    labels = [set(event["Actor"]["Attributes"].values()) for event in events]
    return {run for run in run_ids if any(run in values for values in labels)}


def nmap(tenant: str, run: str, ports: list[int]) -> tuple[str, str, str, dict[str, Any]]:
    return ("nmap", tenant, run, {"targets": ["127.0.0.1"], "ports": ",".join(map(str, ports))})


def test_a_scan_sent_from_the_host_runs_on_an_inner_daemon_only_and_finds_the_open_port(stack: Stack) -> None:
    since, closed = datetime.now(UTC), closed_port()
    with listener() as port:
        [result] = submit(stack.broker_url, [nmap("acme", "stack-scan-1", [port, closed])])
    assert result["status"] == "ok", result
    assert {f["port"]: f["state"] for f in result["findings"]} == {port: "open", closed: "closed"}
    ran_on = {tail for tail, client in stack.inner.items() if created_for(client, since, {"stack-scan-1"})}
    assert len(ran_on) == 1, "the tool container was created on exactly one inner daemon"
    assert not created_for(stack.host, since, {"stack-scan-1"}), "the host engine saw the tool container"


def test_a_finished_runs_event_reaches_its_tenants_receiver_through_the_webhooks_service(stack: Stack) -> None:
    receiver = Receiver(None, [tasks.webhooks.new_secret()]).start()
    conn = redis.Redis.from_url(stack.broker_url)
    try:
        tasks.webhooks.set("tenant-1", receiver.url, receiver.secrets[0], connection=conn, allow_http=True)
        with listener() as port:
            (result,) = submit(stack.broker_url, [nmap("tenant-1", "hooked", [port])])
        (got,) = receiver.wait_for(1, 60)
        event = json.loads(got.body)
        assert got.verified
        assert (event["type"], event["data"]["task_id"]) == ("run.succeeded", result["task_id"])
        # The webhooks queue's own worker made the attempt, no run worker (they do not consume that queue).
        assert "Task toolrunner.webhooks.deliver[" in stack.container("webhooks").logs().decode()
        assert "Task toolrunner.webhooks.deliver[" not in stack.container("worker").logs().decode()
    finally:
        tasks.webhooks.unset("tenant-1", connection=conn)
        conn.close()
        receiver.stop()


def test_flower_answers_with_its_credentials_and_refuses_without(stack: Stack) -> None:
    auth = (stack.values["TOOLRUNNER_FLOWER_USER"], stack.values["TOOLRUNNER_FLOWER_PASSWORD"])
    # refresh: a Flower that just started knows no worker until it has asked them.
    workers = requests.get(f"{stack.flower_url}/api/workers", params={"refresh": "1"}, auth=auth, timeout=60)
    assert workers.status_code == 200
    assert {name.partition("@")[0] for name in workers.json()} >= set(NODES.values())
    assert requests.get(f"{stack.flower_url}/api/workers", timeout=30).status_code == 401
    assert requests.get(f"{stack.flower_url}/api/workers", auth=(auth[0], "wrong"), timeout=30).status_code == 401


def test_redis_and_each_dind_refuse_clients_without_their_credentials(stack: Stack, tmp_path: Path) -> None:
    with redis.Redis(host="127.0.0.1", port=PORT_BASE) as anonymous, pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    for tail in PAIRS:
        # The CA alone (a client that trusts the server but shows no certificate of its own) is refused.
        ca = _ca_only(stack, tail, tmp_path)
        port = PORT_BASE + 10 + PAIRS.index(tail)
        with pytest.raises((docker.errors.DockerException, requests.exceptions.RequestException)):
            docker.DockerClient(
                base_url=f"tcp://127.0.0.1:{port}", tls=docker.tls.TLSConfig(ca_cert=ca, verify=True)
            ).ping()


def _ca_only(stack: Stack, tail: str, tmp_path: Path) -> str:
    bits, _ = stack.container(f"dind{tail}").get_archive("/certs/client/ca.pem")
    with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as archive:
        archive.extractall(tmp_path / tail.strip("-"), filter="data")
    return str(tmp_path / tail.strip("-") / "ca.pem")


@pytest.mark.parametrize(
    ("change", "certificates", "reason"),
    [
        ({"TOOLRUNNER_BROKER_URL": f"redis://127.0.0.1:{PORT_BASE}/0"}, True, "TOOLRUNNER_BROKER_URL has no password"),
        ({}, False, "DinD client certificates not readable in /certs/client: ca.pem, cert.pem, key.pem"),
        ({"DOCKER_TLS_VERIFY": ""}, True, "without DOCKER_TLS_VERIFY=1"),
    ],
    ids=["without-the-redis-password", "without-the-dind-certificates", "without-tls-verification"],
)
def test_the_stacks_worker_refuses_to_start_less_one_credential(
    stack: Stack, change: dict[str, str], certificates: bool, reason: str
) -> None:
    # The stack's own worker container, re-created with its image, command, environment and certificate
    # volume, less one thing; no network, so a worker that did start could not reach anything.
    worker = stack.container("worker")
    env = dict(item.split("=", 1) for item in worker.attrs["Config"]["Env"] if "=" in item) | change
    volumes = {
        m["Name"]: {"bind": m["Destination"], "mode": "ro"} for m in worker.attrs["Mounts"] if m["Type"] == "volume"
    }
    container = stack.host.containers.run(
        worker.image.id, worker.attrs["Config"]["Cmd"], environment=env, network_mode="none",
        volumes=volumes if certificates else {}, detach=True,
    )  # fmt: skip
    try:
        status = container.wait(timeout=60)
        logs = bytes(container.logs()).decode()
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 78, logs
    assert "preflight: refusing to start:" in logs
    assert reason in logs


def test_eight_runs_spread_over_both_inner_daemons(stack: Stack) -> None:
    since = datetime.now(UTC)
    with listener() as port:
        results = submit(stack.broker_url, [nmap(f"tenant-{i % 2}", f"spread-{i}", [port]) for i in range(8)])
    assert [r["status"] for r in results] == ["ok"] * 8
    assert all(r["findings"][0]["state"] == "open" for r in results)
    runs = {f"spread-{i}" for i in range(8)}
    per_daemon = {tail: created_for(client, since, runs) for tail, client in stack.inner.items()}
    print(f"\n[stack] runs per pair: { {NODES[t]: len(r) for t, r in per_daemon.items()} }")
    assert per_daemon[""] | per_daemon["-2"] == runs and not per_daemon[""] & per_daemon["-2"]
    assert per_daemon[""] and per_daemon["-2"], "one daemon ran all eight"


def test_the_beats_sweep_reaches_every_worker_and_each_reports_its_own_daemon(stack: Stack) -> None:
    daemons = {NODES[tail]: client.info()["ID"] for tail, client in stack.inner.items()}
    host_daemon = stack.host.info()["ID"]
    deadline, reports = time.monotonic() + 150, dict[str, dict[str, Any]]()
    while time.monotonic() < deadline and set(reports) != set(daemons):
        reports = _sweep_reports(stack.broker_url)
        time.sleep(2)
    assert {node: report["daemon"] for node, report in reports.items()} == daemons
    assert host_daemon not in {report["daemon"] for report in reports.values()}
    assert all(report["failed"] == [] for report in reports.values())


def _sweep_reports(broker_url: str) -> dict[str, dict[str, Any]]:
    """The latest sweep_daemon result of each worker, by node name without its host part."""
    reports: dict[str, dict[str, Any]] = {}
    with redis.Redis.from_url(broker_url) as conn:
        for key in conn.scan_iter("celery-task-meta-*"):
            meta = json.loads(conn.get(key) or "{}")
            result = meta.get("result")
            # A sweep_daemon report by its shape: the backend keeps no task names (result_extended is off).
            if meta.get("status") == "SUCCESS" and isinstance(result, dict) and {"daemon", "worker"} <= result.keys():
                reports[str(result["worker"]).partition("@")[0]] = result
    return reports


def test_killing_one_pairs_worker_leaves_the_other_serving(stack: Stack) -> None:
    victim = stack.container("worker-2")
    victim.kill()
    victim.reload()
    assert victim.status == "exited"
    since = datetime.now(UTC)
    with listener() as port:
        results = submit(stack.broker_url, [nmap("acme", f"survivor-{i}", [port]) for i in range(4)])
    assert [r["status"] for r in results] == ["ok"] * 4
    runs = {f"survivor-{i}" for i in range(4)}
    assert created_for(stack.inner[""], since, runs) == runs
    victim.reload()
    assert victim.status == "exited", "the killed worker came back: the runs prove nothing"


@pytest.mark.skipif(KEEP, reason="scripts/stack smoke keeps the stack: scripts/stack down removes it")
def test_down_removes_every_container_volume_and_network_the_stack_made(stack: Stack) -> None:
    networks = {n.name for n in stack.host.networks.list()}
    done = stack_command("down")
    assert done.returncode == 0, done.stderr
    assert stack.host.containers.list(all=True, filters={"label": PROJECT_LABEL}) == []
    assert stack.host.volumes.list(filters={"label": PROJECT_LABEL}) == []
    assert {n.name for n in stack.host.networks.list()} == networks == stack.networks_before
