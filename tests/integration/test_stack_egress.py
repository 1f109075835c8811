"""The egress fence for real: iptables accepts config/egress.py's rules, and the DinD entrypoint installs them.

What cannot run here: tool traffic through the fence. This machine's daemons have no bridge (no container
may get an address outside loopback), so no tool container sits behind DOCKER-USER; the rules are checked
by the kernel's own parser and read back from a DinD container's network namespace instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from config.egress import EgressPolicy, parse_networks, ruleset

pytestmark = pytest.mark.integration
IMAGE = "toolrunner-dind:stack"  # the Dockerfile's dind target, which scripts/stack builds
LISTS = {"TOOLRUNNER_EGRESS_ALLOW": "10.20.0.0/16", "TOOLRUNNER_EGRESS_DENY": "198.51.100.7"}
# What a daemon in a container needs here (privileged asks for capabilities this machine's engine cannot grant).
DIND_OPTIONS: dict[str, Any] = {
    "cap_add": ["SYS_ADMIN", "NET_ADMIN"], "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "device_cgroup_rules": ["a *:* rwm"],
}  # fmt: skip
CGROUPS = {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}}
POLICY = EgressPolicy(allow=parse_networks("10.20.0.0/16, fd12::/64"), deny=parse_networks("198.51.100.7"))


def _need(what: str, present: bool) -> None:
    if present:
        return
    message = f"{what} is not available here"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.mark.parametrize(("version", "command"), [(4, "iptables-restore"), (6, "ip6tables-restore")])
def test_iptables_restore_accepts_the_generated_ruleset(version: int, command: str) -> None:
    _need(command, shutil.which(command) is not None and shutil.which("unshare") is not None)
    text = ruleset(POLICY, version)
    # --test parses and builds the tables without committing them; a throwaway network namespace makes
    # sure this machine's own tables are never touched, whatever the tool does.
    checked = subprocess.run(["unshare", "--net", command, "--test"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_the_ruleset_applied_in_a_fresh_namespace_reads_back_rule_for_rule() -> None:
    _need("iptables", shutil.which("iptables-restore") is not None and shutil.which("unshare") is not None)
    script = "iptables-restore && iptables -S TOOLRUNNER-EGRESS"
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", script], input=ruleset(POLICY, 4), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    expected = [line for line in ruleset(POLICY, 4).splitlines() if line.startswith("-A TOOLRUNNER-EGRESS")]
    assert [line for line in done.stdout.splitlines() if line.startswith("-A")] == expected


@pytest.fixture
def fenced_dind(docker_client: docker.DockerClient) -> Iterator[docker.models.containers.Container]:
    """The stack's DinD image with its egress fence on, in a network namespace of its own (network none)."""
    try:
        docker_client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        _need(f"the image {IMAGE} (scripts/stack up builds it)", False)
    container = docker_client.containers.run(
        IMAGE, ["--bridge=none", "--iptables=false"], detach=True, network_mode="none",
        environment={"DOCKER_TLS_CERTDIR": "/certs", **LISTS}, **DIND_OPTIONS,
        volumes=CGROUPS,
        labels={"toolrunner.test": "egress"},
    )  # fmt: skip
    try:
        yield container
    finally:
        container.remove(force=True, v=True)


def test_the_dind_entrypoint_installs_the_fence_in_its_own_namespace_before_dockerd(
    fenced_dind: docker.models.containers.Container,
) -> None:
    host_before = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    deadline = time.monotonic() + 60
    while "API listen on" not in (logs := bytes(fenced_dind.logs()).decode()) and time.monotonic() < deadline:
        fenced_dind.reload()
        assert fenced_dind.status == "running", logs
        time.sleep(0.5)
    assert "egress fence installed (allow: 10.20.0.0/16; deny: 198.51.100.7)" in logs
    assert logs.index("egress fence installed") < logs.index("API listen on")
    exit_code, out = fenced_dind.exec_run(["iptables", "-S", "TOOLRUNNER-EGRESS"])
    assert exit_code == 0
    expected = ruleset(EgressPolicy(allow=parse_networks("10.20.0.0/16"), deny=parse_networks("198.51.100.7")), 4)
    assert [line for line in out.decode().splitlines() if line.startswith("-A")] == [
        line for line in expected.splitlines() if line.startswith("-A TOOLRUNNER-EGRESS")
    ]
    assert subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout == host_before


def test_the_dind_entrypoint_fails_closed_when_the_ipv6_fence_cannot_be_installed(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    _need(f"the image {IMAGE} (scripts/stack up builds it)", bool(docker_client.images.list(IMAGE)))
    broken = tmp_path / "ip6tables-restore"  # first on PATH: an ip6tables that cannot load its tables
    broken.write_text("#!/bin/sh\necho 'ip6tables-restore: no ip6_tables module' >&2\nexit 1\n")
    broken.chmod(0o755)
    container = docker_client.containers.create(
        IMAGE, ["--bridge=none", "--iptables=false"], network_mode="none",
        environment={"DOCKER_TLS_CERTDIR": "/certs"}, **DIND_OPTIONS,
        volumes={str(broken): {"bind": "/usr/local/sbin/ip6tables-restore", "mode": "ro"}},
        labels={"toolrunner.test": "egress"},
    )  # fmt: skip
    try:
        container.start()
        status = container.wait(timeout=60)
        logs = bytes(container.logs()).decode()
    finally:
        container.remove(force=True, v=True)
    assert status["StatusCode"] == 1, logs
    assert "not starting dockerd without the IPv6 egress fence" in logs
    assert "API listen on" not in logs and "egress fence installed" not in logs


def _run_dind_once(client: docker.DockerClient, certs: Path) -> str:
    """Start the DinD image on a certificate directory, wait for its daemon, stop it; its log."""
    container = client.containers.create(
        IMAGE, ["--bridge=none", "--iptables=false"], network_mode="none",
        environment={"DOCKER_TLS_CERTDIR": "/certs", "DIND_EGRESS": "off"}, **DIND_OPTIONS,
        volumes={str(certs): {"bind": "/certs", "mode": "rw"}, **CGROUPS},
        labels={"toolrunner.test": "egress"},
    )  # fmt: skip
    try:  # created, then started here: a container that fails to start is removed too
        container.start()
        deadline = time.monotonic() + 60
        while "API listen on" not in (logs := bytes(container.logs()).decode()) and time.monotonic() < deadline:
            container.reload()
            assert container.status == "running", logs
            time.sleep(0.5)
        return logs
    finally:
        container.remove(force=True, v=True)


def _days_left(cert: Path) -> float:
    end = subprocess.run(["openssl", "x509", "-enddate", "-noout", "-in", str(cert)], capture_output=True, text=True)
    stamp = end.stdout.strip().removeprefix("notAfter=")
    expiry = subprocess.run(["date", "-d", stamp, "+%s"], capture_output=True, text=True, check=True).stdout
    return (int(expiry) - time.time()) / 86400


def test_the_dind_entrypoint_renews_a_certificate_that_expires_within_30_days(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    _need(f"the image {IMAGE} (scripts/stack up builds it)", bool(docker_client.images.list(IMAGE)))
    _need("openssl", shutil.which("openssl") is not None)
    certs = tmp_path / "certs"
    certs.mkdir()
    _run_dind_once(docker_client, certs)
    server = certs / "server"
    ca_before = (certs / "ca" / "cert.pem").read_bytes()
    # Re-issue the server certificate by hand with the same CA, valid for 2 more days only.
    request = ["openssl", "req", "-new", "-key", server / "key.pem", "-subj", "/CN=soon", "-out", tmp_path / "csr"]
    subprocess.run(request, check=True, capture_output=True)
    subprocess.run(
        ["openssl", "x509", "-req", "-in", tmp_path / "csr", "-CA", certs / "ca" / "cert.pem", "-CAkey",
         certs / "ca" / "key.pem", "-CAcreateserial", "-days", "2", "-out", server / "cert.pem"],
        check=True, capture_output=True,
    )  # fmt: skip
    assert _days_left(server / "cert.pem") < 3
    logs = _run_dind_once(docker_client, certs)
    assert "the server certificate expires within 30 days: issuing it anew" in logs
    assert _days_left(server / "cert.pem") > 800
    assert (certs / "ca" / "cert.pem").read_bytes() == ca_before, "the CA stays: workers keep trusting the daemon"
