"""Real scanners (Debian's nmap and ffuf in the local tools image) through Redis and a worker, on 127.0.0.1 only;
ffuf, an intrusive tool, only for a tenant an operator opted in."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import pytest
from libnmap.parser import NmapParser

from bench.launch import Worker, free_port, start_worker
from tasks import run_tool

pytestmark = pytest.mark.integration
QUEUE = "scanners"
WAIT = 180


@pytest.fixture(scope="module")
def scanner_worker(worker: Worker, tools_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A worker whose tool containers use host networking (to reach 127.0.0.1), on a queue of its own."""
    env = {"TOOLRUNNER_TOOL_NETWORK": "host"}
    running = start_worker(tmp_path_factory.mktemp("scanners"), "scanners", env=env, queues=QUEUE, concurrency=2)
    yield running
    running.stop()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], int]]:
    """Factory of static HTTP servers on 127.0.0.1 (a file per path; a directory redirects to its slash)."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve(files: dict[str, str]) -> int:
        root = tmp_path / f"site{len(servers)}"
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        handler = functools.partial(_QuietHandler, directory=str(root))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def scan(tool: str, tenant: str, run: str, params: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = run_tool.apply_async((tool, tenant, run, params), queue=QUEUE).get(timeout=WAIT)
    return result


def nmap_directly(client: docker.DockerClient, image: str, ports: list[int], out: Path) -> NmapParser:
    """Run the same nmap scan outside toolrunner and parse its XML with python-libnmap."""
    out.chmod(0o777)
    argv = ["-sT", "-Pn", "-n", "-p", ",".join(map(str, ports)), "-oX", "/out/nmap.xml", "127.0.0.1"]
    client.containers.run(
        image, argv, entrypoint=["nmap"], network_mode="host", user="65532:65532", cap_drop=["ALL"],
        volumes={str(out): {"bind": "/out", "mode": "rw"}}, remove=True,
    )  # fmt: skip
    return NmapParser.parse_fromfile(str(out / "nmap.xml"))


def test_nmap_reports_the_open_port_open_and_the_closed_port_not_open_as_nmap_itself_does(
    scoped: Callable[..., None],
    scanner_worker: Worker,
    site: Callable[[dict[str, str]], int],
    docker_client: docker.DockerClient,
    tools_image: str,
    tmp_path: Path,
) -> None:
    scoped("acme")
    open_port, closed_port = site({"index.html": "hi"}), free_port()
    result = scan("nmap", "acme", "nmap-1", {"targets": ["127.0.0.1"], "ports": f"{open_port},{closed_port}"})
    assert result["status"] == "ok", result["stderr_tail"]
    states = {f["port"]: f["state"] for f in result["findings"]}
    assert states[open_port] == "open"
    assert states[closed_port] != "open"
    report = nmap_directly(docker_client, tools_image, [open_port, closed_port], tmp_path)
    independent = {s.port: s.state for h in report.hosts for s in h.services}
    assert states == independent
    assert result["outputs"]["nmap.xml"] > 0


def test_ffuf_finds_exactly_the_paths_that_exist_including_one_behind_a_redirect(
    scanner_worker: Worker, site: Callable[[dict[str, str]], int], scoped: Callable[..., None]
) -> None:
    scoped("acme")
    port = site({"robots.txt": "User-agent: *", "secret.txt": "s", "admin/index.html": "admin"})
    words = ["admin", "robots.txt", "secret.txt", "nothere", "missing.php", "backup"]
    params = {"url": f"http://127.0.0.1:{port}/FUZZ", "wordlist": words}
    result = scan("ffuf", "acme", "ffuf-1", params)
    assert result["status"] == "ok", result["stderr_tail"]
    found = {f["input"]: f for f in result["findings"]}
    assert set(found) == {"admin", "robots.txt", "secret.txt"}
    assert found["admin"]["status"] == 301
    assert found["admin"]["redirect_location"].endswith("/admin/")
    assert found["robots.txt"]["status"] == 200
    assert result["outputs"]["ffuf.json"] > 0


def test_an_intrusive_ffuf_run_is_refused_for_a_tenant_not_opted_in_and_runs_for_the_opted_in_one(
    scanner_worker: Worker, site: Callable[[dict[str, str]], int], scoped: Callable[..., None]
) -> None:
    scoped("acme")  # loopback and the opt-in, as `toolrunner limits set --tenant acme --allow-intrusive`
    scoped("tenant-c", intrusive=False)  # loopback only: the same target is in its scope
    port = site({"robots.txt": "User-agent: *"})
    params = {"url": f"http://127.0.0.1:{port}/FUZZ", "wordlist": ["robots.txt", "nothere"]}
    refused = run_tool.apply_async(("ffuf", "tenant-c", "ffuf-refused", params), queue=QUEUE)
    with pytest.raises(Exception) as failed:
        refused.get(timeout=WAIT)
    assert refused.state == "FAILURE" and type(failed.value).__name__ == "IntrusiveToolError"
    assert "toolrunner limits set --tenant tenant-c --allow-intrusive" in str(failed.value)
    assert "intrusive event=refused tenant=tenant-c run=ffuf-refused" in scanner_worker.log_text()
    result = scan("ffuf", "acme", "ffuf-opted-in", params)
    assert result["status"] == "ok", result["stderr_tail"]
    assert [f["input"] for f in result["findings"]] == ["robots.txt"]


def test_two_tenants_scanning_at_once_each_get_only_their_own_data(
    scanner_worker: Worker, site: Callable[[dict[str, str]], int], scoped: Callable[..., None]
) -> None:
    scoped("tenant-a", "tenant-b")
    ports = {tenant: site({f"{tenant}-only.txt": tenant}) for tenant in ("tenant-a", "tenant-b")}
    words = ["tenant-a-only.txt", "tenant-b-only.txt", "nothing"]

    def both(tenant: str) -> tuple[dict[str, Any], dict[str, Any]]:
        port = ports[tenant]
        fuzz = {"url": f"http://127.0.0.1:{port}/FUZZ", "wordlist": words}
        return scan("nmap", tenant, "pair", {"targets": ["127.0.0.1"], "ports": str(port)}), scan(
            "ffuf", tenant, "pair", fuzz
        )

    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(ports, pool.map(both, ports), strict=True))
    for tenant, (nmap_result, ffuf_result) in results.items():
        assert nmap_result["tenant_id"] == ffuf_result["tenant_id"] == tenant
        assert [f["port"] for f in nmap_result["findings"]] == [ports[tenant]]
        assert [f["input"] for f in ffuf_result["findings"]] == [f"{tenant}-only.txt"]
    print(f"two tenants' nmap+ffuf took {time.monotonic() - started:.1f}s")
