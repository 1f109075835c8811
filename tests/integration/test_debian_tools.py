"""Debian's whatweb, sslscan and gobuster in the local tools image, through Redis and a worker, against servers
this module starts on 127.0.0.1 that show exactly what each tool should find."""

from __future__ import annotations

import functools
import http.server
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import tasks.scope
from bench.launch import Worker, free_port, start_worker, wait_until
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


def expired_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name` that was valid in 2020 only, and its key, made with openssl ca."""
    (directory / "ca.cnf").write_text(
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n"
        "default_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n"
    )
    (directory / "index.txt").write_text("")
    (directory / "serial").write_text("01\n")
    run = functools.partial(subprocess.run, cwd=directory, check=True, capture_output=True)
    run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "req.csr",
         "-subj", f"/CN={name}"])  # fmt: skip
    run(["openssl", "ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", "key.pem", "-in", "req.csr",
         "-out", "cert.pem", "-startdate", "20200101000000Z", "-enddate", "20210101000000Z", "-notext"])  # fmt: skip
    return directory / "cert.pem", directory / "key.pem"


@pytest.fixture
def legacy_tls_server(tmp_path: Path) -> Iterator[int]:
    """openssl s_server on 127.0.0.1 with an expired certificate that still speaks TLS 1.0; stopped at teardown."""
    cert, key = expired_certificate(tmp_path, "expired.test")
    port = free_port()
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert), "-key", str(key), "-www",
         "-quiet", "-cipher", "DEFAULT:@SECLEVEL=0", "-min_protocol", "TLSv1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: _listening(port), 10, "openssl s_server to listen")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_sslscan_reports_tls_1_0_enabled_and_the_expired_self_signed_certificate(
    tools_worker: Worker, legacy_tls_server: int, scoped: Callable[..., None]
) -> None:
    scoped("acme")
    result = scan("sslscan", "acme", "sslscan-1", {"targets": [f"127.0.0.1:{legacy_tls_server}"]})
    assert result["status"] == "ok", result["stderr_tail"]
    findings = result["findings"]
    assert {f["port"] for f in findings} == {legacy_tls_server}
    protocols = {f["protocol"]: f for f in findings if f["kind"] == "protocol"}
    assert protocols["TLSv1.0"]["status"] == "enabled" and protocols["TLSv1.0"]["issue"] == "TLSv1.0 enabled"
    assert protocols["TLSv1.2"]["issue"] is None and protocols["SSLv3"]["status"] == "disabled"
    (certificate,) = [f for f in findings if f["kind"] == "certificate"]
    assert certificate["name"] == "expired.test" and certificate["expired"] is True and certificate["self_signed"]
    assert certificate["issue"] == "certificate expired; self-signed certificate"
    assert certificate["not_after"] == "Jan  1 00:00:00 2021 GMT"
    assert any(f["kind"] == "cipher" and f["protocol"] == "TLSv1.0" for f in findings)


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_gobuster_finds_exactly_the_directory_and_files_that_exist_with_a_redirect_to_the_directory(
    tools_worker: Worker,
    serve: Callable[[type[http.server.BaseHTTPRequestHandler]], int],
    scoped: Callable[..., None],
    tmp_path: Path,
) -> None:
    scoped("acme")
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "index.html").write_text("old site")
    (tmp_path / "config.php").write_text("<?php")
    port = serve(functools.partial(_QuietFiles, directory=str(tmp_path)))  # type: ignore[arg-type]
    words = ["backup", "config", "admin", "login", "uploads"]
    params = {"url": f"http://127.0.0.1:{port}/", "wordlist": words, "extensions": ["php"]}
    result = scan("gobuster", "acme", "gobuster-1", params)
    assert result["status"] == "ok", result["stderr_tail"]
    found = {f["url"]: f for f in result["findings"]}
    base = f"http://127.0.0.1:{port}/"
    assert set(found) == {f"{base}backup", f"{base}config.php"}
    assert found[f"{base}backup"]["status"] == 301 and found[f"{base}backup"]["redirect_location"] == "/backup/"
    assert found[f"{base}config.php"]["status"] == 200 and found[f"{base}config.php"]["size"] == 5


class _VirtualHosts(http.server.BaseHTTPRequestHandler):
    """admin.acme.test has its own site and shop.acme.test redirects; any other Host gets the default site."""

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").split(":")[0]
        if host == "shop.acme.test":
            self.send_response(302)
            self.send_header("Location", "/login")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"admin panel" if host == "admin.acme.test" else b"default site"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_gobuster_vhost_finds_exactly_the_virtual_hosts_the_server_answers_for(
    tools_worker: Worker,
    serve: Callable[[type[http.server.BaseHTTPRequestHandler]], int],
    scoped: Callable[..., None],
    redis_url: str,
) -> None:
    scoped("acme")  # loopback; its teardown clears the tenant's whole scope, the domain below included
    with redis.Redis.from_url(redis_url) as client:
        tasks.scope.add("acme", ["acme.test"], connection=client)  # the names are asked about: in scope as domains
    port = serve(_VirtualHosts)
    params = {"mode": "vhost", "url": f"http://127.0.0.1:{port}/", "wordlist": ["admin", "shop", "www", "mail"]}
    result = scan("gobuster", "acme", "gobuster-vhost-1", {**params, "domain": "acme.test"})
    assert result["status"] == "ok", result["stderr_tail"]
    found = {f["vhost"]: f for f in result["findings"]}
    assert set(found) == {"admin.acme.test", "shop.acme.test"}
    assert (found["admin.acme.test"]["status"], found["admin.acme.test"]["size"]) == (200, 11)
    assert found["shop.acme.test"]["redirect_location"] == "/login"
    assert not any(f.get("out_of_scope") for f in result["findings"])
