"""The toolrunner CLI against the real engine: the in-process default, tools, volumes and sweep."""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Callable

import docker
import pytest
from typer.testing import CliRunner

from bench import loopback
from bench.launch import Worker, free_port
from tasks.cli import cli
from tasks.errors import UnreachableTargetError
from tests.conftest import TOOLS_IMAGE
from tests.integration.helpers import aged_labels

pytestmark = pytest.mark.integration


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """No broker configured: `toolrunner run` runs the task in this process against the local engine."""
    monkeypatch.delenv("TOOLRUNNER_BROKER_URL", raising=False)
    return CliRunner()


def test_run_without_a_broker_runs_in_process_and_prints_a_findings_table(
    in_process: CliRunner, busybox_image: str
) -> None:
    script = "printf 'alpha\\nbeta\\n' > /outputs/out.txt"
    result = in_process.invoke(cli, ["run", "script", "--tenant", "acme", "--run", "cli-1", "-p", f"script={script}"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^script for acme/cli-1 \(task cli-[0-9a-f-]{36}\): 2 finding\(s\)$", result.output, re.MULTILINE)
    assert "alpha" in result.output and "beta" in result.output
    assert "status ok" in result.output


def test_run_with_json_prints_the_whole_result_and_exits_1_when_the_tool_fails(
    in_process: CliRunner, busybox_image: str
) -> None:
    args = ["run", "script", "--tenant", "acme", "-p", "script=echo x > /outputs/out.txt; exit 5", "--json"]
    result = in_process.invoke(cli, args)
    assert result.exit_code == 1
    parsed = json.loads(result.stdout)
    assert parsed["status"] == "tool_failed" and parsed["exit_code"] == 5
    assert parsed["findings"] == [{"file": "out.txt", "line": "x"}]


def test_tools_lists_the_catalogue_each_tools_version_and_whether_its_image_is_present(
    in_process: CliRunner, busybox_image: str, docker_client: docker.DockerClient
) -> None:
    table = in_process.invoke(cli, ["tools"])
    assert table.exit_code == 0 and "version" in table.output and "script" in table.output
    listed = in_process.invoke(cli, ["tools", "--json"])
    assert listed.exit_code == 0
    rows = {row["tool"]: row for row in json.loads(listed.stdout)}
    assert {"nmap", "ffuf", "nuclei", "script"} <= rows.keys()
    assert rows["script"]["present"] and rows["script"]["version"] == "unknown"  # busybox records no such tool
    assert rows["nuclei"]["version"] == "v3.10.0" and not rows["nuclei"]["present"]  # the pinned tag
    # nmap runs from the local tools image here: the version is Debian's package, as dpkg's own
    # database inside the image says (read from a container that never starts: no logs to race).
    assert rows["nmap"]["image"] == TOOLS_IMAGE and rows["nmap"]["present"]
    assert rows["ffuf"]["intrusive"] and not rows["nmap"]["intrusive"]
    assert rows["nmap"]["version"] == dpkg_version(docker_client, TOOLS_IMAGE, "nmap")


def dpkg_version(client: docker.DockerClient, image: str, package: str) -> str:
    """The installed version of `package` in `image`, from /var/lib/dpkg/status."""
    container = client.containers.create(image, ["true"], network_mode="none")
    try:
        stream, _ = container.get_archive("/var/lib/dpkg/status")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            member = archive.extractfile("status")
            assert member is not None
            status = member.read().decode()
    finally:
        container.remove(force=True)
    stanza = next(s for s in status.split("\n\n") if s.startswith(f"Package: {package}\n"))
    version = re.search(r"^Version: (.+)$", stanza, re.MULTILINE)
    assert version is not None
    return version.group(1)


def test_volumes_and_a_dry_run_sweep_show_an_aged_volume_without_removing_it(
    in_process: CliRunner, docker_client: docker.DockerClient, make_volume: Callable[..., str]
) -> None:
    make_volume("cli-aged-volume", aged_labels("cli-tenant", 30))
    listed = in_process.invoke(cli, ["volumes", "--tenant", "cli-tenant"])
    assert listed.exit_code == 0 and "cli-aged-volume" in listed.output and "30.0h" in listed.output
    dry = in_process.invoke(cli, ["sweep", "--dry-run"])
    assert dry.exit_code == 0 and "would remove: cli-aged-volume" in dry.output
    assert docker_client.volumes.get("cli-aged-volume")
    swept = in_process.invoke(cli, ["sweep"])
    assert "removed: cli-aged-volume" in swept.output


# One value per param, each of the type its field wants: the CLI converts by field (issue: `ports=6379`
# was sent as a JSON number and refused). Every case must end ok in process, on the host's network.
CLOSED = free_port()  # a port of 127.0.0.1 that nothing listens on
TYPED_PARAMS = [
    ["nmap", "-p", "targets=127.0.0.1", "-p", f"ports={CLOSED}"],
    ["nmap", "-p", "targets=127.0.0.1", "-p", "top_ports=100", "-p", "service_detection=false"],
    ["ffuf", "-p", "url=http://127.0.0.1:9/FUZZ", "-p", "wordlist=a", "-p", "wordlist=b", "-p", "threads=5",
     "-p", "match_codes=200"],
]  # fmt: skip


@pytest.mark.parametrize("args", TYPED_PARAMS, ids=["ports", "top_ports-and-boolean", "threads-codes-list"])
def test_single_numeric_boolean_and_list_params_run_in_process(
    in_process: CliRunner, tools_image: str, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLRUNNER_TOOL_NETWORK", "host")  # the tools reach 127.0.0.1 only from the host's network
    grant = loopback.CLI_FLAGS  # in this process the scope and opt-in are what --scope and --allow-intrusive give
    result = in_process.invoke(cli, ["run", args[0], "--tenant", "acme", "--json", *grant, *args[1:]])
    assert result.exit_code == 0, result.output
    parsed = json.loads(result.stdout)
    assert parsed["status"] == "ok"
    if f"ports={CLOSED}" in args:
        assert [(f["port"], f["state"]) for f in parsed["findings"]] == [(CLOSED, "closed")]


@pytest.mark.parametrize("args", TYPED_PARAMS, ids=["ports", "top_ports-and-boolean", "threads-codes-list"])
def test_typed_params_pass_through_the_queue_and_a_worker_off_the_host_network_refuses_loopback(
    worker: Worker, tools_image: str, args: list[str], scoped: Callable[..., None]
) -> None:
    """The suite's worker runs tools on network none: the params pass validation (the plan step comes first) and
    the scope step refuses loopback, naming the setting, instead of reporting its ports closed."""
    scoped("acme")
    result = CliRunner().invoke(cli, ["run", args[0], "--tenant", "acme", "--json", *args[1:]])
    assert result.exit_code != 0
    assert isinstance(result.exception, UnreachableTargetError), result.output
    assert "network none" in str(result.exception) and "TOOLRUNNER_TOOL_NETWORK=host" in str(result.exception)
