"""Debian's whatweb, sslscan, gobuster, sqlmap and wafw00f in the local tools image, through Redis and a worker,
against servers this module starts on 127.0.0.1 that show exactly what each tool should find."""

from __future__ import annotations

import functools
import http.server
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.parse
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


class _Shop(http.server.BaseHTTPRequestHandler):
    """/item?id=N builds its SQLite query by string concatenation (injectable); /safe?id=N binds the parameter."""

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        ident = urllib.parse.parse_qs(parts.query).get("id", ["1"])[0]
        with sqlite3.connect(":memory:") as db:  # a fresh table each request: nothing a payload does outlives it
            db.execute("create table items (id integer primary key, name text)")
            db.executemany("insert into items values (?, ?)", [(1, "apple"), (2, "pear")])
            try:
                if parts.path == "/item":
                    rows = db.execute("select name from items where id=" + ident).fetchall()
                else:
                    rows = db.execute("select name from items where id=?", (ident,)).fetchall()
                status, body = 200, "".join(f"<li>{name}</li>" for (name,) in rows).encode()
            except sqlite3.Error:
                status, body = 500, b"error"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_sqlmap_detects_the_injectable_parameter_and_not_the_bound_one_within_30_seconds(
    tools_worker: Worker, serve: Callable[[type[http.server.BaseHTTPRequestHandler]], int], scoped: Callable[..., None]
) -> None:
    scoped("acme")  # loopback and the intrusive-tools opt-in (bench.loopback)
    port = serve(_Shop)
    base = f"http://127.0.0.1:{port}"
    params = {"targets": [f"{base}/item?id=1", f"{base}/safe?id=1"], "techniques": "BU"}
    started = time.monotonic()
    result = scan("sqlmap", "acme", "sqlmap-1", params)
    took = time.monotonic() - started
    assert result["status"] == "ok", result["stderr_tail"]
    (finding,) = result["findings"]
    assert (finding["url"], finding["place"], finding["parameter"]) == (f"{base}/item?id=1", "GET", "id")
    assert finding["techniques"] == ["boolean-based blind", "UNION query"] and finding["technique_codes"] == "BU"
    assert not finding.get("out_of_scope")
    assert took < 30, f"sqlmap took {took:.1f}s"


class _Cloudflare(http.server.BaseHTTPRequestHandler):
    """A site fronted by what looks like Cloudflare (its Server and CF-RAY headers)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Server", "cloudflare")
        self.send_header("CF-RAY", "7d1e2f3a4b5c6d7e-AMS")
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"shop")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Plain(http.server.BaseHTTPRequestHandler):
    """A site with nothing in front of it: the same page whatever the query."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"plain")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Blocking(http.server.BaseHTTPRequestHandler):
    """A site that answers 403 to anything that looks like an attack, 200 otherwise: a WAF without a name."""

    def do_GET(self) -> None:
        query = urllib.parse.unquote(self.path)
        blocked = any(sign in query for sign in ("<script", "UNION", "../", "'"))
        self.send_response(403 if blocked else 200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"no" if blocked else b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_wafw00f_names_the_cloudflare_site_sees_the_blocking_one_generically_and_nothing_on_a_plain_one(
    tools_worker: Worker, serve: Callable[[type[http.server.BaseHTTPRequestHandler]], int], scoped: Callable[..., None]
) -> None:
    scoped("acme", intrusive=False)  # wafw00f is not intrusive: no opt-in needed
    sites = [f"http://127.0.0.1:{serve(handler)}/" for handler in (_Cloudflare, _Blocking, _Plain)]
    started = time.monotonic()
    result = scan("wafw00f", "acme", "wafw00f-1", {"targets": sites})
    took = time.monotonic() - started
    assert result["status"] == "ok", result["stderr_tail"]
    found = {f["url"]: f for f in result["findings"]}
    assert set(found) == set(sites)
    cloudflare, blocking, plain = (found[site] for site in sites)
    assert (cloudflare["firewall"], cloudflare["manufacturer"], cloudflare["generic"]) == (
        "Cloudflare", "Cloudflare Inc.", False,
    )  # fmt: skip
    assert blocking["detected"] and blocking["generic"] and blocking["firewall"] == "Generic"
    assert not plain["detected"] and plain["firewall"] is None
    assert took < 30, f"wafw00f took {took:.1f}s"
