"""A webhook receiver on loopback for the integration tests and bench.webhooks: real HTTPS under a CA of its own,
every request's Standard Webhooks signature verified with the library's verifier, statuses scripted.

`LocalCA` makes a CA and a server certificate for `localhost` and 127.0.0.1 (workers trust the CA through
TOOLRUNNER_WEBHOOK_CA_BUNDLE); `Receiver` serves on a port that survives `stop()` and `start()` (a receiver down,
then up again) and keeps, per request, its headers, body, whether its signature verified and when it arrived.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class LocalCA:
    """A CA's certificate (ca.pem: what workers trust) and a server certificate and key it signed."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def make(cls, directory: Path) -> LocalCA:
        """A fresh CA and a certificate for localhost and 127.0.0.1, valid for a day, in `directory`."""
        now = datetime.datetime.now(datetime.UTC)
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "toolrunner test CA")])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca = (
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - DAY).not_valid_after(now + DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True).add_extension(ca_ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        cert = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY).not_valid_after(now + DAY)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        found = cls(directory / "ca.pem", directory / "server.pem", directory / "server.key")
        found.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        found.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        found.key_file.write_bytes(pem)
        return found

    def server_context(self) -> ssl.SSLContext:
        """The receiver's TLS context."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )  # fmt: skip


@dataclass
class Received:
    """One request as the receiver got it."""

    headers: dict[str, str]
    body: bytes
    verified: bool
    at: float
    status: int


@dataclass
class Receiver:
    """An HTTPS receiver on 127.0.0.1 verifying every request with `secrets` (any of them verifying is enough);
    plain HTTP without a CA (for a stack whose containers cannot trust the test's CA)."""

    ca: LocalCA | None
    secrets: list[str]
    statuses: list[int] = field(default_factory=list)  # answered in order; 200 once they run out
    hold: Callable[[], None] | None = None  # called before answering (a test holds a request here)
    port: int = 0
    got: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """Where the receiver listens: by name (the certificate's) over HTTPS, by address over HTTP."""
        if self.ca is None:
            return f"http://127.0.0.1:{self.port}/hooks/toolrunner"
        return f"https://localhost:{self.port}/hooks/toolrunner"

    def start(self) -> Receiver:
        """Listen (on the same port again after a stop)."""
        server = _Server(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        if self.ca is not None:
            server.socket = self.ca.server_context().wrap_socket(server.socket, server_side=True)
        self.port, self._server = server.server_address[1], server
        threading.Thread(target=server.serve_forever, daemon=True, name="webhook-receiver").start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until start()."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def port_open(self) -> bool:
        """Whether it is listening now."""
        return self._server is not None

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        """The requests once at least `count` have arrived; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        while len(self.got) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.got)} webhook requests arrived in {timeout:g}s, not {count}")
            time.sleep(0.05)
        return list(self.got)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        """Verify, record, and pick the status."""
        verified = any(_verifies(secret, body, headers) for secret in self.secrets)
        if self.hold is not None:
            self.hold()
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else 200
            self.got.append(Received(headers, body, verified, time.time(), status))
            return status


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client gone mid-request (a worker killed while the test held its request) is expected here


def _verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = receiver.answer({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: Any) -> None:
            pass

    return Handler
