"""Debian's whatweb, sslscan and gobuster in the local tools image, through Redis and a worker, against servers
this module starts on 127.0.0.1 that show exactly what each tool should find."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bench.launch import Worker, start_worker
from tasks import run_tool

pytestmark = pytest.mark.integration
QUEUE = "debian-tools"
WAIT = 60


@pytest.fixture(scope="module")
def tools_worker(worker: Worker, tools_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A worker whose tool containers use host networking (to reach 127.0.0.1), on a queue of its own."""
    env = {"TOOLRUNNER_TOOL_NETWORK": "host"}
    running = start_worker(tmp_path_factory.mktemp("debian"), "debian", env=env, queues=QUEUE, concurrency=2)
    yield running
    running.stop()


def scan(tool: str, tenant: str, run: str, params: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = run_tool.apply_async((tool, tenant, run, params), queue=QUEUE).get(timeout=WAIT)
    return result


class _ShopHandler(http.server.BaseHTTPRequestHandler):
    """A site that announces Apache on Ubuntu, PHP and WordPress; /moved redirects to / on the same host."""

    server_version = "Apache/2.4.41 (Ubuntu)"
    sys_version = ""
    BODY = b'<html><head><title>Acme shop</title><meta name="generator" content="WordPress 6.4.2"></head></html>'

    def do_GET(self) -> None:
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("X-Powered-By", "PHP/7.4.3")
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[[type[http.server.BaseHTTPRequestHandler]], int]]:
    """Factory of HTTP servers on 127.0.0.1 with a given handler; each is shut down at teardown."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(handler: type[http.server.BaseHTTPRequestHandler]) -> int:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_whatweb_fingerprints_the_server_language_and_cms_a_site_announces_following_a_redirect(
    tools_worker: Worker, serve: Callable[[type[http.server.BaseHTTPRequestHandler]], int], scoped: Callable[..., None]
) -> None:
    scoped("acme")
    port = serve(_ShopHandler)
    params = {"targets": [f"http://127.0.0.1:{port}/moved"], "follow_redirects": True}
    result = scan("whatweb", "acme", "whatweb-1", params)
    assert result["status"] == "ok", result["stderr_tail"]
    found = {(f["url"], f["plugin"]): f for f in result["findings"]}
    site = f"http://127.0.0.1:{port}/"
    assert found[(site, "HTTPServer")]["string"] == ["Apache/2.4.41 (Ubuntu)"]
    assert found[(site, "HTTPServer")]["os"] == ["Ubuntu Linux"]
    assert found[(site, "PHP")]["version"] == ["7.4.3"]
    assert found[(site, "WordPress")]["version"] == ["6.4.2"]
    assert found[(site, "Title")]["string"] == ["Acme shop"]
    assert found[(f"{site}moved", "RedirectLocation")]["status"] == 302
    assert {f["status"] for f in result["findings"] if f["url"] == site} == {200}
    assert not any(f.get("out_of_scope") for f in result["findings"])
