"""Hostile tools (busybox scripts) against a worker with tight limits: the limits hold, the worker survives."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from bench.launch import Worker, start_worker
from tasks import run_tool

pytestmark = pytest.mark.integration
QUEUE = "hostile"
WAIT = 180
LIMITS = {
    "TOOLRUNNER_MEMORY_LIMIT": "128m",
    "TOOLRUNNER_PIDS_LIMIT": "64",
    "TOOLRUNNER_FILE_SIZE_LIMIT": str(64 << 20),
    "TOOLRUNNER_MAX_OUTPUT_FILE_BYTES": str(1 << 20),
    "TOOLRUNNER_MAX_OUTPUT_TOTAL_BYTES": str(2 << 20),
}


@pytest.fixture(scope="module")
def hostile_worker(worker: Worker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A worker (network none for tools) with small memory, pids, file-size and output caps."""
    running = start_worker(tmp_path_factory.mktemp("hostile"), "hostile", env=LIMITS, queues=QUEUE, concurrency=2)
    yield running
    running.stop()


def run(script: str, run_id: str, outputs: list[str] | None = None, timeout: int = 30) -> dict[str, Any]:
    params = {"script": script, "outputs": outputs or ["out.txt"], "timeout_seconds": timeout}
    result: dict[str, Any] = run_tool.apply_async(("script", "acme", run_id, params), queue=QUEUE).get(timeout=WAIT)
    return result


def worker_rss_kib(worker: Worker) -> int:
    """Resident memory of the worker's main process and its pool children, in KiB."""
    children = subprocess.run(
        ["ps", "-o", "rss=", "--ppid", str(worker.process.pid), "-p", str(worker.process.pid)],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return sum(int(x) for x in children)


@pytest.fixture(autouse=True)
def the_worker_survives_and_the_next_run_works(hostile_worker: Worker) -> Iterator[None]:
    yield
    assert hostile_worker.process.poll() is None, "the worker died"
    assert run("echo fine > /outputs/out.txt", "after")["findings"] == [{"file": "out.txt", "line": "fine"}]


def test_a_fork_bomb_hits_the_pids_limit_and_is_killed_at_its_timeout(hostile_worker: Worker) -> None:
    # The bomb runs in a subshell, and the shell then waits with builtins only: a fork it made itself once the
    # limit is reached would fail ("can't fork"), ending the run with exit 2 before the timeout (seen once).
    result = run("(bomb() { bomb | bomb & }; bomb); while :; do :; done", "forkbomb", timeout=5)
    assert result["status"] == "timed_out"


def test_a_memory_hog_is_oom_killed_and_reported_so(hostile_worker: Worker) -> None:
    result = run('x=$(head -c 600000000 /dev/zero | tr "\\0" a); echo ${#x}', "memhog")
    assert result["status"] == "tool_failed"
    assert "OOM" in result["reason"] or "signal 9" in result["reason"]


def test_writing_5_gib_stops_at_the_file_size_limit_and_the_output_cap_and_worker_memory_stays_flat(
    hostile_worker: Worker,
) -> None:
    before = worker_rss_kib(hostile_worker)
    result = run("dd if=/dev/zero of=/outputs/out.txt bs=1M count=5120", "bigfile")
    after = worker_rss_kib(hostile_worker)
    assert result["status"] == "tool_failed"
    assert "over the per-file cap" in result["reason"]
    assert result["findings"] == [] and result["outputs"] == {}
    assert after - before < 64 * 1024, f"worker RSS grew by {(after - before) // 1024} MiB"


def test_a_stdout_flood_is_capped_by_the_log_limit(hostile_worker: Worker) -> None:
    result = run("yes flood | head -c 20000000; echo ok > /outputs/out.txt", "flood")
    assert result["status"] == "ok"
    assert result["stats"]["stdout_lines"] <= (1 << 20) // len("flood\n") + 1
    assert len(result["stderr_tail"]) <= 8192


@pytest.mark.parametrize(
    ("script", "outputs"),
    [
        ("ln -s /etc/passwd /outputs/out.txt", ["out.txt"]),
        ("echo x > /outputs/a && ln /outputs/a /outputs/out.txt", ["a", "out.txt"]),
        ("mkfifo /outputs/out.txt", ["out.txt"]),
        ("mkdir /outputs/d && ln -s / /outputs/d/up && echo x > /outputs/e", ["d/up/etc/passwd"]),
    ],
)
def test_links_and_fifos_among_outputs_are_refused_and_nothing_outside_is_read(
    hostile_worker: Worker, script: str, outputs: list[str]
) -> None:
    result = run(script, "links", outputs)
    assert result["status"] == "tool_failed"
    assert "refused" in result["reason"]
    assert result["findings"] == [] and result["outputs"] == {}


def test_a_tool_cannot_make_device_nodes_because_it_has_no_capabilities(hostile_worker: Worker) -> None:
    script = "mknod /outputs/null c 1 3 2>/outputs/out.txt; echo exit=$? >> /outputs/out.txt; ls /outputs"
    result = run(script, "mknod")
    lines = [f["line"] for f in result["findings"]]
    assert any("Operation not permitted" in line for line in lines)
    assert "exit=0" not in lines


def test_another_tenants_volume_is_not_reachable_by_name(
    hostile_worker: Worker, docker_client: docker.DockerClient
) -> None:
    from isolation import IsolatedContainerVolume

    with IsolatedContainerVolume("victim", "secret", docker_client) as victim:
        victim.initialize({"secret.txt": "victim data"})
        script = (
            f"(ls /var/lib/docker/volumes/{victim.name} 2>&1; cat /*/secret.txt 2>&1;"
            r" find / \( -path /proc -o -path /sys \) -prune -o -name secret.txt -print;"
            " grep -E ' /(inputs|outputs) ' /proc/mounts | cut -d' ' -f2) > /outputs/out.txt; true"
        )
        result = run(script, "snoop")
    lines = [f["line"] for f in result["findings"]]
    assert lines[0].startswith("ls: /var/lib/docker/volumes/") and "No such file or directory" in lines[0]
    assert not any("victim data" in line or line.endswith("secret.txt") for line in lines[1:])
    assert sorted(lines[-2:]) == ["/inputs", "/outputs"], "the tool sees exactly its own two volumes"


def test_the_docker_api_is_not_reachable_from_a_tool(hostile_worker: Worker) -> None:
    script = (
        "(ls -la /var/run/docker.sock /run/docker.sock 2>&1; nc -w 2 127.0.0.1 2375 </dev/null 2>&1;"
        " echo exit=$?; cat /proc/self/status | grep CapEff) > /outputs/out.txt; true"
    )
    lines = [f["line"] for f in run(script, "dockerapi")["findings"]]
    assert sum("No such file or directory" in line for line in lines) == 2
    assert "exit=0" not in lines
    assert "CapEff:\t0000000000000000" in lines


def test_tool_containers_run_with_no_capabilities_and_no_new_privileges(hostile_worker: Worker) -> None:
    lines = [
        f["line"]
        for f in run("grep -E 'Cap(Eff|Bnd|Prm)|NoNewPrivs' /proc/self/status > /outputs/out.txt", "caps")["findings"]
    ]
    assert "CapEff:\t0000000000000000" in lines
    assert "CapBnd:\t0000000000000000" in lines
    assert "NoNewPrivs:\t1" in lines
